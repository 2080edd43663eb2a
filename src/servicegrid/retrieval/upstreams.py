"""The services the orchestrator calls, built from settings once or handed in by the caller."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from servicegrid.clients.api_gateway import APIGatewayClient, APIGatewayGRPCClient
from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.model_clients import ModelClients
from servicegrid.clients.questions import QuestionServiceClient, QuestionServiceGRPCClient
from servicegrid.clients.reranking import RerankingClient
from servicegrid.clients.users import UserServiceClient, UserServiceGRPCClient
from servicegrid.discovery.resolver import Discovery
from servicegrid.llm import DistributedLLMClient
from servicegrid.settings import Settings

__all__ = ["Upstreams"]

UserClient = UserServiceClient | UserServiceGRPCClient
QuestionClient = QuestionServiceClient | QuestionServiceGRPCClient
GatewayClient = APIGatewayClient | APIGatewayGRPCClient


@dataclass
class Upstreams:
    """The model services' and LLM clients (``models``; no LLM: extractive answers), and
    seed 002's services over REST and over gRPC, each opened on first use.

    :meth:`aclose` closes what this object built; ``models`` handed in with ``owned``
    False belong to the caller.
    """

    models: ModelClients
    discovery: Discovery | None = None
    owned: bool = True
    _apps: dict[str, Any] = field(default_factory=dict, init=False)
    _llm_started: bool = field(default=False, init=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, discovery: Discovery | None = None) -> Upstreams:
        """Clients at the settings' targets; the LLM hosts as the gateway's."""
        return cls(ModelClients.from_settings(settings, registry=None), discovery=discovery)

    @property
    def embedding(self) -> EmbeddingClient:
        return self.models.embedding

    @property
    def reranking(self) -> RerankingClient | None:
        return self.models.reranking

    @property
    def documents(self) -> DoclingVLMClient | None:
        return self.models.documents

    @property
    def llm(self) -> DistributedLLMClient | None:
        return self.models.llm

    def _app(self, kind: str, use_grpc: bool) -> Any:
        key = f"{kind}-{'grpc' if use_grpc else 'rest'}"
        client = self._apps.get(key)
        if client is None:
            rest, grpc = {
                "users": (UserServiceClient, UserServiceGRPCClient),
                "questions": (QuestionServiceClient, QuestionServiceGRPCClient),
                "api-gateway": (APIGatewayClient, APIGatewayGRPCClient),
            }[kind]
            make = grpc if use_grpc else rest
            client = self._apps[key] = make(discovery=self.discovery, registry=None)
        return client

    def users(self, use_grpc: bool) -> UserClient:
        client: UserClient = self._app("users", use_grpc)
        return client

    def questions(self, use_grpc: bool) -> QuestionClient:
        client: QuestionClient = self._app("questions", use_grpc)
        return client

    def api_gateway(self, use_grpc: bool) -> GatewayClient:
        client: GatewayClient = self._app("api-gateway", use_grpc)
        return client

    async def llm_client(self) -> DistributedLLMClient | None:
        """The LLM client, started once (a registry that does not answer yet is no error)."""
        if not self._llm_started and self.owned:
            await self.models.start()
        self._llm_started = True
        return self.llm

    async def aclose(self) -> None:
        """Close seed 002's clients, and the rest when this object built them."""
        closing: list[Any] = [client.aclose() for client in self._apps.values()]
        self._apps.clear()
        if self.owned:
            closing.append(self.models.aclose())
        await asyncio.gather(*closing, return_exceptions=True)
