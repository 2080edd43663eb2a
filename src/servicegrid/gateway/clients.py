"""The upstream clients the gateway calls, built from settings or handed in by the caller."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.grpc_base import GrpcServiceClient
from servicegrid.clients.grpc_config import ServiceClientConfig
from servicegrid.clients.reranking import RerankingClient
from servicegrid.llm import DistributedLLMClient, LLMHost
from servicegrid.settings import Settings
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

__all__ = ["GatewayClients", "llm_hosts"]


def llm_hosts(urls: tuple[str, ...] | list[str], api_key: str | None) -> list[LLMHost]:
    """A host per ``name=url`` or bare URL entry (named by its ``host:port``)."""
    hosts: list[LLMHost] = []
    for entry in urls:
        name, sep, url = entry.partition("=")
        if not sep or "://" in name:
            url, name = entry, LLMHost.from_url(entry).name
        hosts.append(LLMHost(name=name.strip(), url=url.strip(), api_key=api_key))
    return hosts


def _llm_client(settings: Settings, hosts: list[LLMHost]) -> DistributedLLMClient | None:
    """Over ``SERVICEGRID_LLM_URLS``, else over the instances of ``SERVICEGRID_LLM_SERVICE``
    found through discovery, else none."""
    if hosts:
        return DistributedLLMClient(hosts=hosts)
    if settings.llm_service:
        return DistributedLLMClient.from_discovery(settings.llm_service)
    return None


@dataclass
class GatewayClients:
    """One client per upstream; ``documents`` and ``llm`` are optional."""

    embedding: EmbeddingClient
    reranking: RerankingClient
    documents: DoclingVLMClient | None = None
    llm: DistributedLLMClient | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, registry: StatusRegistry | None = DEFAULT_REGISTRY
    ) -> GatewayClients:
        """Clients at the settings' targets (``discovery:///...`` included); no LLM without
        ``llm_urls``."""
        hosts = llm_hosts(settings.llm_urls, settings.openai_api_key)
        return cls(
            embedding=EmbeddingClient(
                config=ServiceClientConfig.from_settings(settings, "embedding"), registry=registry
            ),
            reranking=RerankingClient(
                config=ServiceClientConfig.from_settings(settings, "reranking"), registry=registry
            ),
            documents=DoclingVLMClient(
                config=ServiceClientConfig.from_settings(settings, "documents"), registry=registry
            ),
            llm=_llm_client(settings, hosts),
        )

    def model_services(self) -> dict[str, GrpcServiceClient]:
        """The gRPC clients present, by their service name."""
        present = (self.embedding, self.reranking, self.documents)
        return {client.service_name: client for client in present if client is not None}

    async def start(self) -> None:
        """Open what needs opening (the LLM client); idempotent."""
        if self.llm is not None:
            # a registry that does not answer yet must not keep the gateway from serving
            await self.llm.start(wait_for_hosts=False)

    async def aclose(self) -> None:
        """Close every client; one failing to close does not keep the others open."""
        closing = [client.aclose() for client in self.model_services().values()]
        if self.llm is not None:
            closing.append(self.llm.stop())
        await asyncio.gather(*closing, return_exceptions=True)
