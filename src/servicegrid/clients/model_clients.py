"""The model services' clients and the LLM client, as one object with one lifecycle.

The gateway answers its REST routes with them and the retrieval orchestrator
searches and answers with them; both build them here from settings or are
handed them by the caller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.grpc_base import GrpcServiceClient
from servicegrid.clients.grpc_config import ServiceClientConfig
from servicegrid.clients.reranking import RerankingClient
from servicegrid.llm import DistributedLLMClient
from servicegrid.llm.configured import configured_llm
from servicegrid.settings import Settings
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

__all__ = ["ModelClients"]


@dataclass
class ModelClients:
    """One client per upstream; ``documents`` and ``llm`` are optional."""

    embedding: EmbeddingClient
    reranking: RerankingClient
    documents: DoclingVLMClient | None = None
    llm: DistributedLLMClient | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, registry: StatusRegistry | None = DEFAULT_REGISTRY
    ) -> ModelClients:
        """Clients at the settings' targets (``discovery:///...`` included); no LLM without
        ``llm_urls``."""
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
            llm=configured_llm(settings),
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
