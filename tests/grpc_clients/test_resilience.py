"""Retry, deadlines and the circuit breaker on real gRPC calls, with a fake clock for waits."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.reranking import RerankingClient
from servicegrid.errors import (
    AuthenticationError,
    Cancelled,
    ConflictError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    PermissionDenied,
    ResourceExhausted,
    ResourceNotFoundError,
    ServerError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailable,
    ServiceUnavailableError,
    Unimplemented,
    ValidationError,
)
from servicegrid.resilience import CircuitState, deadline_scope
from servicegrid.testing import FakeClock
from tests.grpc_clients.servers import ClientFactory, GrpcTestServer


def sent_at_most(limit: float) -> float:
    """The largest deadline a server may see for a ``limit``-second timeout: the wire
    format (``grpc-timeout``) keeps a few significant digits and rounds up."""
    return limit * 1.01 + 0.001


async def test_unavailable_is_retried_with_backoff_then_succeeds(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, retry_attempts=3, retry_delay=1.0)
    grpc_server.control.fail(grpc.StatusCode.UNAVAILABLE, times=2)

    response = await client.generate_embeddings(["hello"])

    assert len(response.embeddings) == 1
    assert grpc_server.control.calls["GenerateEmbeddings"] == 3
    # full jitter under min(max_retry_delay, retry_delay * exponential_base**(n-1))
    assert len(clock.sleeps) == 2
    assert 0.0 <= clock.sleeps[0] <= 1.0
    assert 0.0 <= clock.sleeps[1] <= 2.0
    assert client.get_status()["state"] == "closed"
    assert client.get_status()["failure_count"] == 0


async def test_invalid_argument_is_a_validation_error_and_not_retried(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, retry_attempts=3)
    grpc_server.control.fail(grpc.StatusCode.INVALID_ARGUMENT, details="unknown model 'nope'")

    with pytest.raises(ValidationError) as caught:
        await client.generate_embeddings(["hello"], model_name="nope")

    assert caught.value.message == "unknown model 'nope'"  # the server's details
    assert caught.value.details["grpc_code"] == "INVALID_ARGUMENT"
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)
    assert grpc_server.control.total == 1
    assert clock.sleeps == []
    assert client.get_status()["failure_count"] == 0  # a bad request says nothing of health


async def test_server_deadline_exceeded_is_a_service_timeout_error(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, retry_attempts=1)
    grpc_server.control.fail(grpc.StatusCode.DEADLINE_EXCEEDED, details="model too slow")
    with pytest.raises(ServiceTimeoutError) as caught:
        await client.list_models()
    assert isinstance(caught.value, DeadlineExceeded)
    assert caught.value.message == "model too slow"


async def test_per_call_timeout_is_honoured(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, retry_attempts=1, timeout=30.0)
    grpc_server.control.delay = 30.0  # far longer than the call may take

    with pytest.raises(DeadlineExceeded) as caught:
        await client.generate_embeddings(["slow"], timeout=0.2)

    assert isinstance(caught.value, grpc.RpcError)  # seed 000's breakers count these
    remaining = grpc_server.control.time_remaining[0]
    assert remaining is not None
    assert remaining <= sent_at_most(0.2)


async def test_the_stub_gets_the_configured_or_the_per_call_timeout(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, timeout=7.0)
    await client.list_models()
    await client.list_models(timeout=60.0)  # seed 000: retry with a longer timeout
    configured, longer = grpc_server.control.time_remaining
    assert configured is not None
    assert longer is not None
    assert 0 < configured <= sent_at_most(7.0)
    assert 7.0 < longer <= sent_at_most(60.0)


async def test_the_remaining_deadline_caps_each_attempt(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, timeout=30.0)
    with deadline_scope(clock.now() + 0.5):
        await client.list_models()
    remaining = grpc_server.control.time_remaining[0]
    assert remaining is not None
    assert remaining <= sent_at_most(0.5)


async def test_a_passed_deadline_sends_nothing(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    with deadline_scope(clock.now() - 1.0), pytest.raises(DeadlineExceeded):
        await client.list_models()
    assert grpc_server.control.total == 0
    assert client.get_status()["failure_count"] == 0  # the service did nothing wrong


async def test_total_timeout_bounds_the_call_and_shrinks_later_attempts(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, retry_attempts=5, total_timeout=5.0)
    grpc_server.control.fail(grpc.StatusCode.UNAVAILABLE, times=5, retry_after="3")

    with pytest.raises(ServiceUnavailableError):
        await client.list_models()

    # waits of 3 s (the server's hint): a second one would end past the 5 s budget
    assert clock.sleeps == [3.0]
    assert grpc_server.control.total == 2
    second = grpc_server.control.time_remaining[1]
    assert second is not None
    assert second <= sent_at_most(2.0)  # 5 s budget - 3 s slept


async def test_retry_after_trailer_sets_the_wait(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target, retry_attempts=2)
    grpc_server.control.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after="7")
    await client.list_models()
    assert clock.sleeps == [7.0]


async def test_breaker_opens_after_the_threshold_and_then_sends_nothing(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(
        RerankingClient,
        grpc_server.target,
        retry_attempts=1,
        circuit_breaker_threshold=2,
        circuit_breaker_timeout=30.0,
    )
    grpc_server.control.fail(grpc.StatusCode.UNAVAILABLE, times=2)

    for _ in range(2):
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.rerank_batch("q", ["d"])
        assert not isinstance(caught.value, ServiceUnavailable)  # the server said so
    assert client.get_status()["state"] == "open"

    with pytest.raises(ServiceUnavailable) as rejected:
        await client.rerank_batch("q", ["d"])
    assert rejected.value.retry_after == pytest.approx(30.0)
    assert grpc_server.control.total == 2  # rejected without an RPC

    clock.advance(30.0)
    response = await client.rerank_batch("q", ["d"])  # the half-open trial succeeds
    assert len(response.results) == 1
    assert client.circuit_breaker.state is CircuitState.CLOSED


async def test_connection_refused_is_service_unavailable_after_retries(
    make_client: ClientFactory, clock: FakeClock, unused_port: int
) -> None:
    client = make_client(EmbeddingClient, f"127.0.0.1:{unused_port}", retry_attempts=3)

    with pytest.raises(ServiceUnavailableError) as caught:
        await client.generate_embeddings(["hello"])

    assert isinstance(caught.value, grpc.RpcError)  # seed 000's breakers count these
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)
    assert caught.value.details["grpc_code"] == "UNAVAILABLE"
    assert caught.value.service == "embedding"
    assert len(clock.sleeps) == 2  # three attempts


async def test_a_killed_server_restarted_on_its_port_is_used_again(
    grpc_server: GrpcTestServer, make_client: ClientFactory, clock: FakeClock
) -> None:
    client = make_client(
        EmbeddingClient,
        grpc_server.target,
        retry_attempts=2,
        circuit_breaker_threshold=2,
        circuit_breaker_timeout=60.0,
    )
    await client.list_models()
    await grpc_server.stop()

    with pytest.raises(ServiceUnavailableError):
        await client.list_models()
    assert client.get_status()["state"] == "open"
    with pytest.raises(ServiceUnavailable):
        await client.list_models()

    await grpc_server.start()  # same port
    # Real time on the wire: let the channel reconnect before the breaker's trial call.
    await asyncio.wait_for(client.channel.channel_ready(), timeout=20)
    clock.advance(61.0)

    response = await client.list_models()
    assert len(response.models) == 1
    assert client.get_status()["state"] == "closed"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.CANCELLED, Cancelled),
        (grpc.StatusCode.UNKNOWN, ServerError),
        (grpc.StatusCode.NOT_FOUND, ResourceNotFoundError),
        (grpc.StatusCode.ALREADY_EXISTS, ConflictError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.OUT_OF_RANGE, ValidationError),
        (grpc.StatusCode.UNIMPLEMENTED, Unimplemented),
        (grpc.StatusCode.INTERNAL, InternalError),
        (grpc.StatusCode.DATA_LOSS, DataLoss),
        (grpc.StatusCode.UNAUTHENTICATED, AuthenticationError),
    ],
)
async def test_no_bare_rpc_error_escapes(
    grpc_server: GrpcTestServer,
    make_client: ClientFactory,
    code: grpc.StatusCode,
    expected: type[ServiceError],
) -> None:
    client = make_client(EmbeddingClient, grpc_server.target)
    grpc_server.control.always_fail(code)
    with pytest.raises(ServiceError) as caught:
        await client.generate_embeddings(["x"])
    assert isinstance(caught.value, expected)
    assert type(caught.value).__mro__[1] is expected  # the class itself, as a grpc.RpcError
    assert isinstance(caught.value, grpc.RpcError)
    assert caught.value.code() is code
    assert caught.value.details() == f"always {code.name}"
    assert caught.value.message == f"always {code.name}"
    assert grpc_server.control.total == (3 if expected.retryable else 1)
