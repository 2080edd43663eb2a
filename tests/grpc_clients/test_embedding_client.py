"""EmbeddingClient against a real grpc.aio server: seed 000's usage, validation, lifecycle."""

from __future__ import annotations

import re
from typing import Any

import grpc
import grpc.aio
import pytest

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.errors import ValidationError
from servicegrid.proto import embedding_service_pb2
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from tests.grpc_clients.servers import ClientFactory, GrpcTestServer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


async def test_seed_usage_runs_as_written(grpc_server: GrpcTestServer) -> None:
    embedding_client = EmbeddingClient(service_url=grpc_server.target)
    try:
        # Generate embeddings for single request
        embeddings = await embedding_client.generate_embeddings(
            texts=["This is a test document", "Another test document"],
            model_name=MODEL,
            config=embedding_service_pb2.EmbeddingConfig(
                normalize=True, batch_size=32, timeout_seconds=30.0
            ),
        )
        assert len(embeddings.embeddings) == 2
        for embedding in embeddings.embeddings:
            assert embedding.dimension == 4
            assert embedding.norm == pytest.approx(1.0)
        assert embeddings.metadata.model_name == MODEL
        sent = grpc_server.control.requests[-1]
        assert sent.config.normalize
        assert sent.config.batch_size == 32

        # Generate embeddings for batch request
        batch_request = embedding_service_pb2.GenerateEmbeddingsBatchRequest(
            requests=[
                embedding_service_pb2.GenerateEmbeddingsRequest(
                    texts=["Document 1", "Document 2"], model_name=MODEL
                ),
                embedding_service_pb2.GenerateEmbeddingsRequest(
                    texts=["Document 3", "Document 4"], model_name=MODEL
                ),
            ]
        )
        batch_response = await embedding_client.generate_embeddings_batch(batch_request)
        assert len(batch_response.responses) == 2
        assert [len(r.embeddings) for r in batch_response.responses] == [2, 2]

        # List available models
        models = await embedding_client.list_models()
        assert [(m.name, m.dimension, m.available) for m in models.models] == [(MODEL, 384, True)]
    finally:
        await embedding_client.aclose()


async def test_embeddings_are_deterministic_and_in_order(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    first = await client.generate_embeddings(["a", "bb", "ccc"])
    second = await client.generate_embeddings(["a", "bb", "ccc"])
    assert first.embeddings == second.embeddings
    assert [e.values[0] for e in first.embeddings] == [1.0, 2.0, 3.0]
    assert first.metadata.model_name == "default-model"  # model_name="" → service default


async def test_batch_accepts_a_list_of_requests(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    requests = [
        embedding_service_pb2.GenerateEmbeddingsRequest(texts=["x"]),
        embedding_service_pb2.GenerateEmbeddingsRequest(texts=["y", "z"]),
    ]
    response = await client.generate_embeddings_batch(requests)
    assert [len(r.embeddings) for r in response.responses] == [1, 2]
    assert grpc_server.control.calls["GenerateEmbeddingsBatch"] == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"texts": "one string"}, "texts"),
        ({"texts": []}, "texts"),
        ({"texts": None}, "texts"),
        ({"texts": ["ok", 3]}, "texts[1]"),
        ({"texts": ["ok"], "model_name": 7}, "model_name"),
        ({"texts": ["ok"], "config": {"normalize": True}}, "config"),
    ],
)
async def test_bad_input_is_a_validation_error_before_any_rpc(
    grpc_server: GrpcTestServer, make_client: ClientFactory, kwargs: dict[str, Any], field: str
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    with pytest.raises(ValidationError) as caught:
        await client.generate_embeddings(**kwargs)
    assert caught.value.validation_errors[0]["field"] == field
    assert caught.value.service == "embedding"
    assert grpc_server.control.total == 0


@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([], "requests"),
        (embedding_service_pb2.GenerateEmbeddingsBatchRequest(), "requests"),
        ("not requests", "requests"),
        ([embedding_service_pb2.GenerateEmbeddingsRequest(texts=["a"]), "b"], "requests[1]"),
        (
            [
                embedding_service_pb2.GenerateEmbeddingsRequest(texts=["a"]),
                embedding_service_pb2.GenerateEmbeddingsRequest(),
            ],
            "requests[1].texts",
        ),
    ],
)
async def test_bad_batches_are_validation_errors_before_any_rpc(
    grpc_server: GrpcTestServer, make_client: ClientFactory, requests: Any, field: str
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    with pytest.raises(ValidationError) as caught:
        await client.generate_embeddings_batch(requests)
    assert caught.value.validation_errors[0]["field"] == field
    assert grpc_server.control.total == 0


async def test_get_stats_returns_the_services_counters_as_a_dict(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    await client.list_models()
    stats = await client.get_stats()
    assert stats["total_requests"] == 2  # int, not protobuf JSON's int64 string
    assert stats["queue_depth"] == 0  # zero values are present too


async def test_metadata_reaches_the_servicer(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(
        EmbeddingClient, grpc_server.target, tenant_id="tenant-a", correlation_id="corr-123"
    )
    await client.generate_embeddings(["hello"])
    seen = grpc_server.control.metadata[-1]
    assert seen["x-tenant-id"] == "tenant-a"
    assert seen["x-request-id"] == "corr-123"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen["traceparent"])


async def test_each_call_gets_its_own_request_id_when_none_is_configured(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    await client.list_models()
    await client.list_models()
    first, second = (seen["x-request-id"] for seen in grpc_server.control.metadata)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second
    assert "x-tenant-id" not in grpc_server.control.metadata[0]
    # a 32-hex request id doubles as the trace id, so logs and traces join up
    assert grpc_server.control.metadata[0]["traceparent"].split("-")[1] == first


async def test_retries_of_one_call_share_its_request_id(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    grpc_server.control.fail(grpc.StatusCode.UNAVAILABLE, times=2)
    await client.list_models()
    ids = {seen["x-request-id"] for seen in grpc_server.control.metadata}
    assert len(grpc_server.control.metadata) == 3
    assert len(ids) == 1


async def test_health_check_reports_serving_and_not_serving(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

    client = make_client(EmbeddingClient, grpc_server.target)
    report = await client.health_check()
    assert report["status"] == "healthy"
    assert report["grpc_status"] == "SERVING"
    assert report["service"] == "embedding"
    assert report["circuit_breaker"] == "closed"
    assert report["response_time_ms"] >= 0

    # a status under the service's own name wins over the server-wide one
    await grpc_server.health.set(
        "servicegrid.v1.EmbeddingService", health_pb2.HealthCheckResponse.NOT_SERVING
    )
    report = await client.health_check()
    assert report["status"] == "unhealthy"
    assert report["grpc_status"] == "NOT_SERVING"


async def test_health_check_of_a_dead_service_is_unhealthy_not_an_exception(
    make_client: ClientFactory, unused_port: int
) -> None:
    client = make_client(EmbeddingClient, f"127.0.0.1:{unused_port}")
    report = await client.health_check()
    assert report["status"] == "unhealthy"
    assert report["error_type"] == "ServiceUnavailableError"
    assert report["error"]


async def test_async_with_closes_the_channel_and_later_calls_fail_clearly(
    grpc_server: GrpcTestServer,
) -> None:
    async with EmbeddingClient(grpc_server.target, registry=None) as client:
        await client.list_models()
        assert client.state.value == "opened"
    assert client.state.value == "closed"
    with pytest.raises(RuntimeError, match="closed"):
        await client.list_models()
    await client.aclose()  # idempotent


async def test_an_injected_channel_is_used_and_left_open(grpc_server: GrpcTestServer) -> None:
    channel = grpc.aio.insecure_channel(grpc_server.target)
    try:
        client = EmbeddingClient("ignored:1", channel=channel, registry=None)
        await client.list_models()
        await client.aclose()
        # the client did not close what it did not open
        stub_call = channel.unary_unary("/servicegrid.v1.EmbeddingService/ListModels")
        assert await stub_call(b"") is not None
    finally:
        await channel.close()


async def test_the_client_registers_its_breaker_status(grpc_server: GrpcTestServer) -> None:
    client = EmbeddingClient(grpc_server.target)
    try:
        assert DEFAULT_REGISTRY.reporters()["embedding"] is client
        status = client.get_status()
        assert set(status) == {
            "service",
            "state",
            "failure_count",
            "last_failure",
            "last_state_change",
        }
        assert status["service"] == "embedding"
        assert status["state"] == "closed"
    finally:
        await client.aclose()

    own = StatusRegistry()
    named = EmbeddingClient(grpc_server.target, service_name="embed-eu", registry=own)
    unregistered = EmbeddingClient(grpc_server.target, service_name="quiet", registry=None)
    assert own.reporters() == {"embed-eu": named}
    assert "quiet" not in DEFAULT_REGISTRY.reporters()
    await named.aclose()
    await unregistered.aclose()
