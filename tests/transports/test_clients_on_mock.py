"""Every client on MockTransport: no socket is opened, the clients behave as on the wire."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import httpx
import pytest
import requests
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from servicegrid import (
    EmbeddingClient,
    EnhancedHTTPClient,
    ResilientServiceClient,
    RetryConfig,
    ServiceClientConfig,
)
from servicegrid.errors import (
    ClientStateError,
    ConnectError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)
from servicegrid.proto import embedding_service_pb2 as pb
from servicegrid.testing import FakeClock
from servicegrid.transports import Call, MockTransport, Reply


def test_resilient_service_client_on_the_mock_transport() -> None:
    clock = FakeClock()
    answers = iter([Reply(503), Reply(200, [("content-type", "application/json")], b"{}")])
    mock = MockTransport(lambda call: next(answers))
    client = ResilientServiceClient(
        "http://chroma:6003", service_name="chroma", transport=mock, clock=clock, registry=None
    )
    response = client.post("/query", json={"q": "x"})
    assert isinstance(response, requests.Response)
    assert (response.status_code, response.json()) == (200, {})
    assert [call.url for call in mock.calls] == ["http://chroma:6003/query"] * 2
    assert mock.calls[0].options == {"json": {"q": "x"}}
    assert mock.calls[0].timeout == 10.0
    assert clock.sleeps == [1.0]


def test_resilient_service_client_errors_stay_requests_errors_on_the_mock() -> None:
    def refused(call: Call) -> Reply:
        raise ConnectError("refused")

    client = ResilientServiceClient(
        "http://chroma:6003",
        transport=MockTransport(refused),
        max_retries=1,
        clock=FakeClock(),
        registry=None,
    )
    with pytest.raises(requests.ConnectionError):
        client.get("/health")


async def test_enhanced_client_on_the_mock_transport() -> None:
    seen: list[Call] = []

    def handler(call: Call) -> Reply:
        seen.append(call)
        if call.url.endswith("/missing"):
            return Reply(404, [("content-type", "application/json")], b'{"detail": "no"}')
        return Reply(200, [("content-type", "application/json")], b'{"echo": true}')

    client = EnhancedHTTPClient(
        "svc",
        "http://svc:8080/api",
        headers={"Authorization": "Bearer t"},
        transport=MockTransport(handler),
        retry_config=RetryConfig(max_retries=1),
        registry=None,
    )
    async with client:
        response = await client.post("/embed", json={"texts": ["a"]})
        with pytest.raises(ResourceNotFoundError):
            await client.get("/missing")
    assert isinstance(response, httpx.Response)
    assert response.json() == {"echo": True}
    assert response.headers["content-type"] == "application/json"
    assert response.request.url == "http://svc:8080/api/embed"
    assert response.request.headers["authorization"] == "Bearer t"
    assert seen[0].body == b'{"texts":["a"]}'
    assert ("content-type", "application/json") in seen[0].headers
    assert client.get_status()["errors_total"] == 1


async def test_grpc_client_on_the_mock_transport() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "/grpc.health.v1.Health/Check":
            return Reply(body=health_pb2.HealthCheckResponse(status=1))
        assert call.method == "/servicegrid.v1.EmbeddingService/GenerateEmbeddings"
        assert dict(call.headers)["x-tenant-id"] == "acme"
        texts = list(call.body.texts)
        vectors = [pb.EmbeddingResult(values=[1.0, 0.0], dimension=2) for _ in texts]
        return Reply(body=pb.GenerateEmbeddingsResponse(embeddings=vectors))

    config = ServiceClientConfig("embedding:50052", tenant_id="acme")
    async with EmbeddingClient(
        config=config, transport=MockTransport(handler), registry=None
    ) as client:
        response = await client.generate_embeddings(["a", "b"])
        health = await client.health_check()
    assert [e.dimension for e in response.embeddings] == [2, 2]
    assert health["status"] == "healthy"


async def test_grpc_client_errors_are_rpc_errors_on_the_mock_transport() -> None:
    def handler(call: Call) -> Reply:
        raise ServiceUnavailableError("down", service_name="embedding")

    client = EmbeddingClient(
        config=ServiceClientConfig("embedding:50052", retry_attempts=1),
        transport=MockTransport(handler),
        registry=None,
    )
    with pytest.raises(grpc.RpcError) as caught:
        await client.generate_embeddings(["a"])
    error = caught.value
    assert isinstance(error, ServiceUnavailableError)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == "down"
    await client.aclose()


async def test_http2_sends_through_httpx() -> None:
    from servicegrid.transports.httpx_transport import HttpxTransport

    client = EnhancedHTTPClient("svc", "http://svc:8080", http2=True, registry=None)
    assert isinstance(client.http, HttpxTransport)
    assert client.http.http2 is True
    await client.aclose()


async def test_a_closed_client_says_so_with_a_typed_error() -> None:
    client = EmbeddingClient(
        config=ServiceClientConfig("embedding:50052"),
        transport=MockTransport(lambda call: Reply()),
        registry=None,
    )
    await client.aclose()
    with pytest.raises(ClientStateError, match="closed") as caught:
        await client.generate_embeddings(["a"])
    assert isinstance(
        caught.value, RuntimeError
    )  # what code written for bare RuntimeErrors catches
    assert isinstance(caught.value, grpc.RpcError)
    http = EnhancedHTTPClient("svc", "http://svc:8080", registry=None)
    await http.aclose()
    with pytest.raises(ClientStateError, match="closed"):
        await http.get("/x")


def test_a_channel_from_another_event_loop_is_a_typed_error() -> None:
    async def make_channel() -> grpc.aio.Channel:
        return grpc.aio.insecure_channel("127.0.0.1:1")

    channel = asyncio.run(make_channel())  # belongs to a loop that has ended
    client = EmbeddingClient(
        config=ServiceClientConfig("127.0.0.1:1", retry_attempts=1), channel=channel, registry=None
    )
    with pytest.raises(ClientStateError, match="another event loop"):
        asyncio.run(client.generate_embeddings(["a"]))
