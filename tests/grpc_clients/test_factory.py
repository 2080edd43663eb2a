"""ServiceClientFactory (seed 000) and the functions behind it."""

from __future__ import annotations

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.factory import (
    ServiceClientFactory,
    create_embedding_client,
    create_reranking_client,
)
from servicegrid.clients.grpc_base import ServiceClientConfig
from servicegrid.clients.reranking import RerankingClient
from servicegrid.status import StatusRegistry
from servicegrid.testing import FakeClock
from tests.grpc_clients.servers import GrpcTestServer


async def test_factory_functions_build_working_clients(grpc_server: GrpcTestServer) -> None:
    config = ServiceClientConfig(
        service_url=grpc_server.target, timeout=12.0, retry_attempts=2, tenant_id="acme"
    )
    registry = StatusRegistry()
    embedding = create_embedding_client(config, registry=registry, clock=FakeClock())
    reranking = create_reranking_client(config, registry=registry)
    try:
        assert isinstance(embedding, EmbeddingClient)
        assert isinstance(reranking, RerankingClient)
        assert embedding.config is config  # retry, breaker, TLS and tenant, not only the URL
        assert embedding.retry.attempts == 2
        assert set(registry.reporters()) == {"embedding", "reranking"}

        response = await embedding.generate_embeddings(["hello"])
        assert len(response.embeddings) == 1
        ranked = await reranking.rerank_batch("q", ["a", "b"])
        assert len(ranked.results) == 2
        assert grpc_server.control.metadata[0]["x-tenant-id"] == "acme"
    finally:
        await embedding.aclose()
        await reranking.aclose()


async def test_seed_factory_class_is_the_same_functions(grpc_server: GrpcTestServer) -> None:
    config = ServiceClientConfig(service_url=grpc_server.target)
    embedding_client = ServiceClientFactory.create_embedding_client(config)
    reranking_client = ServiceClientFactory.create_reranking_client(config)
    try:
        models = await embedding_client.list_models()
        assert models.models
        reranking_models = await reranking_client.list_models()
        assert reranking_models.models[0].max_sequence_length == 512
    finally:
        await embedding_client.aclose()
        await reranking_client.aclose()
