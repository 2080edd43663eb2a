"""The embedding client as seed 000's users hold it, against the real embedding service.

* Seed 000's ``CircuitBreaker(failure_threshold=5, recovery_timeout=60.0,
  expected_exception=grpc.RpcError)`` around ``generate_embeddings`` counts the
  client's errors (they are ``grpc.RpcError`` instances too).
* One module-level client serves successive ``asyncio.run`` calls and threads
  with loops of their own ("initialise clients once and reuse them").

The service runs in a thread with its own event loop, on a port chosen before
it starts, so that a test can call it while it is down and after it comes up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

import grpc

from servicegrid import CircuitBreaker, CircuitState, EmbeddingClient, ServiceClientConfig
from servicegrid.errors import ServiceUnavailable, ServiceUnavailableError
from servicegrid.testing import FakeClock
from tests.grpc_clients.servers import FAST_RECONNECT
from tests.support.embedding_thread import ServiceThread
from tests.support.threaded_server import free_port

# The seed's advice, followed literally: one client for the module, made once.
PORT = free_port()
EMBEDDING_CLIENT = EmbeddingClient(
    config=ServiceClientConfig(f"127.0.0.1:{PORT}", timeout=60.0),
    channel_options=FAST_RECONNECT,
    registry=None,
)


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceThread]:
    running = ServiceThread(PORT)
    running.start()
    try:
        yield running
    finally:
        running.close()


async def _embed(client: EmbeddingClient, text: str) -> int:
    response = await client.generate_embeddings([text])
    return response.embeddings[0].dimension


def test_seed_000_breaker_counts_the_clients_errors_opens_and_recovers() -> None:
    port = free_port()  # nothing listens here yet
    clock = FakeClock()
    # retries and the client's own breaker out of the way: the seed's breaker is under test
    client = EmbeddingClient(
        config=ServiceClientConfig(
            f"127.0.0.1:{port}", retry_attempts=1, circuit_breaker_threshold=100
        ),
        channel_options=FAST_RECONNECT,
        registry=None,
    )
    circuit_breaker = CircuitBreaker(
        failure_threshold=5, recovery_timeout=60.0, expected_exception=grpc.RpcError, clock=clock
    )
    attempts: list[str] = []

    async def safe_service_call() -> object:
        attempts.append("call")
        return await circuit_breaker.call(client.generate_embeddings, texts=["test"], model_name="")

    async def while_down() -> None:
        for _ in range(5):
            with pytest.raises(ServiceUnavailableError) as caught:
                await safe_service_call()
            assert isinstance(caught.value, grpc.RpcError)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert circuit_breaker.get_state() is CircuitState.OPEN
        assert circuit_breaker.get_failure_count() == 5
        with pytest.raises(ServiceUnavailable):  # rejected while open: the client is not called
            await circuit_breaker.call(client.generate_embeddings, texts=["test"])

    asyncio.run(while_down())

    service = ServiceThread(port)
    try:
        service.start()

        async def after_recovery() -> int:
            # wait for the channel to reconnect (readiness, not a sleep), then let the
            # breaker's 60 s cool-down pass on its clock: the trial call closes it
            for _ in range(600):
                if (await client.health_check())["status"] == "healthy":
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the restarted service never answered its health check")
            clock.advance(60.0)
            assert circuit_breaker.get_state() is CircuitState.HALF_OPEN
            response = await safe_service_call()
            await client.aclose()
            return len(response.embeddings)  # type: ignore[attr-defined]

        assert asyncio.run(after_recovery()) == 1
        assert circuit_breaker.get_state() is CircuitState.CLOSED
        assert circuit_breaker.get_failure_count() == 0
    finally:
        service.close()


def test_one_module_level_client_serves_every_loop_and_thread(service: ServiceThread) -> None:
    # three successive event loops, each closed when asyncio.run returns
    for round_ in range(3):
        assert asyncio.run(_embed(EMBEDDING_CLIENT, f"round {round_}")) == 384

    # two threads, each with an event loop of its own, at the same time
    with ThreadPoolExecutor(max_workers=2) as pool:
        dimensions = list(
            pool.map(lambda n: asyncio.run(_embed(EMBEDDING_CLIENT, f"thread {n}")), range(2))
        )
    assert dimensions == [384, 384]
    # the breaker and status are the client's, shared by every loop
    assert EMBEDDING_CLIENT.get_status()["state"] == "closed"
    assert EMBEDDING_CLIENT.circuit_breaker.total_successes == 5
