"""EnhancedHTTPClient / AsyncHTTPClient (seed 004, 1.4) against a real misbehaving HTTP server.

Every client gets a FakeClock: backoff and rate-limit waits take no wall time
and are asserted exactly from ``clock.sleeps``. Nothing here asserts on
elapsed wall time.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from servicegrid import (
    AsyncHTTPClient,
    CircuitBreakerConfig,
    ConnectionPoolConfig,
    EnhancedHTTPClient,
    RateLimitConfig,
    ResourceNotFoundError,
    RetryConfig,
    ServiceUnavailable,
    ServiceUnavailableError,
    TimeoutConfig,
    ValidationError,
)
from servicegrid.clients import ClientState
from servicegrid.errors import (
    ClientStateError,
    ConflictError,
    ConnectError,
    ConnectionLost,
    DeadlineExceeded,
    InjectedFault,
    InternalError,
    RateLimited,
    ReadTimeout,
    ServiceError,
    TransportError,
)
from servicegrid.resilience import FaultInjection
from servicegrid.status import DEFAULT_REGISTRY
from servicegrid.testing import FakeClock
from servicegrid.transports.http import PhaseTimeouts, PoolLimits
from servicegrid.transports.http1 import Http1Transport
from tests.support.faulty_server import FaultyServer, free_port

NAME = "embeddings"

MakeClient = Callable[..., EnhancedHTTPClient]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FaultyServer]:
    with FaultyServer() as running:
        yield running


@pytest.fixture
def server(shared_server: FaultyServer) -> FaultyServer:
    """conftest's real loopback server, started once per module and reset before each test."""
    behaviour = shared_server.behaviour
    with behaviour.lock:
        behaviour.mode, behaviour.status, behaviour.retry_after, behaviour.delay = (
            "ok",
            503,
            None,
            0.0,
        )
        behaviour.script = deque()
        behaviour.hits.clear()
    return shared_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(server: FaultyServer, clock: FakeClock) -> AsyncIterator[MakeClient]:
    """Clients for the shared server on the fake clock, closed after the test."""
    made: list[EnhancedHTTPClient] = []

    def make(**kwargs: Any) -> EnhancedHTTPClient:
        options: dict[str, Any] = {"clock": clock}
        options.update(kwargs)
        service_name = options.pop("service_name", NAME)
        base_url = options.pop("base_url", server.url)
        client = EnhancedHTTPClient(service_name, base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def hits(server: FaultyServer, path: str) -> int:
    with server.behaviour.lock:
        return server.behaviour.hits[path]


def fail(status: int, retry_after: str | None = None) -> dict[str, Any]:
    return {"mode": "fail", "status": status, "retry_after": retry_after}


NO_JITTER = RetryConfig(jitter=False)
ONE_ATTEMPT = RetryConfig(max_retries=1, jitter=False)


# --- configuration defaults (seed 004) ------------------------------------------------------------


def test_config_defaults_match_seed_004() -> None:
    pool = ConnectionPoolConfig()
    assert (pool.max_connections, pool.max_keepalive_connections, pool.keepalive_expiry) == (
        100,
        20,
        5.0,
    )
    retry = RetryConfig()
    assert (
        retry.max_retries,
        retry.base_delay,
        retry.max_delay,
        retry.exponential_base,
        retry.jitter,
    ) == (3, 1.0, 60.0, 2.0, True)
    t = TimeoutConfig()
    assert (t.connect, t.read, t.write, t.pool) == (5.0, 30.0, 10.0, 5.0)


def test_alias_and_exports() -> None:
    assert AsyncHTTPClient is EnhancedHTTPClient


async def test_opened_transport_has_the_default_limits_and_timeouts(
    make_client: MakeClient,
) -> None:
    client = make_client()
    assert client.state is ClientState.UNOPENED
    async with client:
        assert client.state is ClientState.OPENED
        http = client.http
        assert isinstance(http, Http1Transport)
        assert http.timeouts == PhaseTimeouts(connect=5.0, read=30.0, write=10.0, pool=5.0)
        assert http.limits == PoolLimits(100, 20, 5.0)
        assert http.pool().limits == PoolLimits(100, 20, 5.0)
    assert client.state is ClientState.CLOSED
    with pytest.raises(ClientStateError):
        http.pool()


async def test_custom_pool_and_timeouts_reach_the_transport(make_client: MakeClient) -> None:
    client = make_client(
        pool_config=ConnectionPoolConfig(
            max_connections=7, max_keepalive_connections=3, keepalive_expiry=1.5
        ),
        timeout_config=TimeoutConfig(connect=1.0, read=2.0, write=3.0, pool=4.0),
    )
    async with client:
        http = client.http
        assert isinstance(http, Http1Transport)
        assert http.timeouts == PhaseTimeouts(connect=1.0, read=2.0, write=3.0, pool=4.0)
        assert http.limits == PoolLimits(7, 3, 1.5)


# --- requests against the real server -------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
async def test_each_verb(make_client: MakeClient, server: FaultyServer, method: str) -> None:
    async with make_client() as client:
        response = await getattr(client, method)("/items/1")
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "/items/1"
    assert body["method"] == method.upper()
    assert hits(server, "/items/1") == 1


@pytest.mark.parametrize("method", ["post", "put", "patch"])
async def test_json_body_is_sent(make_client: MakeClient, method: str) -> None:
    data = {"texts": ["a", "b"], "normalize": True}
    async with make_client() as client:
        response = await getattr(client, method)("/embed", json=data)
    assert json.loads(response.json()["echo"]) == data


async def test_headers_and_params(make_client: MakeClient) -> None:
    async with make_client(headers={"X-Client": "servicegrid"}) as client:
        response = await client.get("/search", params={"q": "x"}, headers={"X-Extra": "1"})
    assert response.request.headers["X-Client"] == "servicegrid"
    assert response.request.headers["X-Extra"] == "1"
    assert response.request.url.params["q"] == "x"


async def test_5xx_retried_with_exact_exponential_delays(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(503), fail(500), fail(502)])
    retry = RetryConfig(max_retries=4, base_delay=0.5, jitter=False)
    async with make_client(retry_config=retry) as client:
        response = await client.get("/x")
    assert response.status_code == 200
    assert hits(server, "/x") == 4
    assert clock.sleeps == [0.5 * 2**n for n in range(3)]


async def test_exponential_base_and_max_delay(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(503)] * 4)
    retry = RetryConfig(
        max_retries=5, base_delay=1.0, exponential_base=3.0, max_delay=5.0, jitter=False
    )
    async with make_client(retry_config=retry) as client:
        assert (await client.get("/x")).status_code == 200
    assert clock.sleeps == [1.0, 3.0, 5.0, 5.0]


async def test_jitter_stays_within_the_exponential_bound(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(503)] * 3)
    async with make_client(retry_config=RetryConfig(max_retries=4)) as client:
        assert (await client.get("/x")).status_code == 200
    assert len(clock.sleeps) == 3
    for n, delay in enumerate(clock.sleeps):
        assert 0.0 <= delay <= 1.0 * 2**n


async def test_retry_after_is_honoured(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(429, retry_after="3")])
    async with make_client(retry_config=NO_JITTER) as client:
        assert (await client.get("/x")).status_code == 200
    assert clock.sleeps == [3.0]


async def test_exhausted_5xx_raises_typed_error(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="fail", status=503, retry_after="2")
    async with make_client(retry_config=NO_JITTER) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.post("/x", json={})
    error = caught.value
    assert not isinstance(error, ServiceUnavailable)
    assert error.retryable
    assert error.retry_after == 2.0
    assert error.service == NAME
    assert error.details["status_code"] == 503
    assert error.details["method"] == "POST"
    assert hits(server, "/x") == 3
    assert clock.sleeps == [2.0, 2.0]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(404, ResourceNotFoundError), (422, ValidationError), (409, ConflictError)],
)
async def test_4xx_raised_as_typed_errors_without_retry(
    make_client: MakeClient,
    server: FaultyServer,
    clock: FakeClock,
    status: int,
    error_type: type[ServiceError],
) -> None:
    server.set(mode="fail", status=status)
    async with make_client() as client:
        with pytest.raises(error_type) as caught:
            await client.get("/thing/7")
        assert client.circuit_breaker.failure_count == 0
        assert client.get_status()["circuit_breaker"]["state"] == "closed"
    assert hits(server, "/thing/7") == 1
    assert clock.sleeps == []
    result = caught.value.to_dict()
    assert result["error"] == error_type.__name__
    assert result["http_status"] == status
    assert result["retryable"] is False
    assert result["details"]["status_code"] == status
    assert f"HTTP {status}" in result["message"]
    assert result["service"] == NAME
    json.dumps(result)


async def test_read_timeout_is_deadline_exceeded(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="slow", delay=2.0)
    client = make_client(
        retry_config=RetryConfig(max_retries=2, jitter=False),
        timeout_config=TimeoutConfig(connect=1.0, read=0.3, write=1.0, pool=1.0),
    )
    async with client:
        with pytest.raises(DeadlineExceeded) as caught:
            await client.get("/slow")
    assert isinstance(caught.value, ReadTimeout)
    assert "timed out waiting for the answer" in str(caught.value)
    assert hits(server, "/slow") == 2
    assert clock.sleeps == [1.0]


async def test_connection_refused_is_connect_error(clock: FakeClock) -> None:
    client = EnhancedHTTPClient(
        NAME,
        f"http://127.0.0.1:{free_port()}",
        retry_config=RetryConfig(max_retries=3, jitter=False),
        clock=clock,
    )
    async with client:
        with pytest.raises(ConnectError) as caught:
            await client.get("/x")
    assert isinstance(caught.value, TransportError)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert clock.sleeps == [1.0, 2.0]
    assert client.circuit_breaker.failure_count == 3


async def test_dropped_connection_is_a_transport_error(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="close")
    async with make_client(retry_config=RetryConfig(max_retries=2, jitter=False)) as client:
        with pytest.raises(TransportError) as caught:
            await client.get("/drop")
    assert isinstance(caught.value, ConnectionLost)
    assert hits(server, "/drop") == 2
    assert clock.sleeps == [1.0]


async def test_dropped_then_ok_recovers(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[{"mode": "close"}])
    async with make_client(retry_config=NO_JITTER) as client:
        assert (await client.get("/drop")).json()["ok"] is True
    assert hits(server, "/drop") == 2


# --- circuit breaker ------------------------------------------------------------------------------


async def trip(client: EnhancedHTTPClient, server: FaultyServer) -> None:
    server.set(mode="fail", status=503)
    for _ in range(client.circuit_breaker.failure_threshold):
        with pytest.raises(ServiceUnavailableError):
            await client.get("/trip")
    assert client.get_status()["circuit_breaker"]["state"] == "open"


async def test_circuit_opens_after_threshold_and_rejects_locally(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=30.0)
    async with make_client(retry_config=ONE_ATTEMPT, circuit_breaker_config=breaker) as client:
        await trip(client, server)
        assert hits(server, "/trip") == 3
        server.set(mode="ok")
        with pytest.raises(ServiceUnavailable) as caught:
            await client.get("/other")
        assert caught.value.retry_after == 30.0
        assert hits(server, "/other") == 0
        assert client.get_status()["circuit_breaker"]["failure_count"] == 3


async def test_circuit_counts_failed_attempts_not_calls(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2)
    server.set(mode="fail", status=500)
    async with make_client(retry_config=NO_JITTER, circuit_breaker_config=breaker) as client:
        # attempts 1 and 2 fail and open the circuit; the call ends with the real error
        # rather than sleeping toward an attempt the circuit would refuse
        with pytest.raises(InternalError):
            await client.get("/x")
        assert hits(server, "/x") == 2
        with pytest.raises(ServiceUnavailable):
            await client.get("/x")
    assert hits(server, "/x") == 2


async def test_half_open_trial_success_closes(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30.0)
    async with make_client(retry_config=ONE_ATTEMPT, circuit_breaker_config=breaker) as client:
        await trip(client, server)
        server.set(mode="ok")
        clock.advance(29.0)
        with pytest.raises(ServiceUnavailable):
            await client.get("/probe")
        clock.advance(1.0)
        assert (await client.get("/probe")).status_code == 200
        assert hits(server, "/probe") == 1
        assert client.get_status()["circuit_breaker"]["state"] == "closed"


async def test_half_open_trial_failure_reopens(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30.0)
    async with make_client(retry_config=ONE_ATTEMPT, circuit_breaker_config=breaker) as client:
        await trip(client, server)
        clock.advance(30.0)
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get("/probe")
        assert not isinstance(caught.value, ServiceUnavailable)
        assert hits(server, "/probe") == 1
        assert client.get_status()["circuit_breaker"]["state"] == "open"
        with pytest.raises(ServiceUnavailable):
            await client.get("/probe")
        assert hits(server, "/probe") == 1


async def test_half_open_admits_a_single_concurrent_trial(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30.0)
    async with make_client(retry_config=ONE_ATTEMPT, circuit_breaker_config=breaker) as client:
        await trip(client, server)
        server.set(mode="ok")
        clock.advance(30.0)
        results = await asyncio.gather(
            *(client.get("/probe") for _ in range(5)), return_exceptions=True
        )
    passed = [r for r in results if isinstance(r, httpx.Response)]
    rejected = [r for r in results if isinstance(r, ServiceUnavailable)]
    assert len(passed) == 1
    assert len(rejected) == 4
    assert hits(server, "/probe") == 1
    assert client.circuit_breaker.state.value == "closed"


# --- rate limiter ---------------------------------------------------------------------------------


async def test_rate_limiter_fails_fast_past_the_burst(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    limit = RateLimitConfig(requests_per_second=1.0, burst_size=2, wait=False)
    async with make_client(rate_limit_config=limit) as client:
        await client.get("/x")
        await client.get("/x")
        with pytest.raises(RateLimited) as caught:
            await client.get("/x")
        assert caught.value.retry_after == pytest.approx(1.0)
        assert hits(server, "/x") == 2
        assert clock.sleeps == []  # not retried
        status = client.get_status()
        assert status["rate_limiter"]["total_rejected"] == 1
        assert status["rate_limiter"]["burst"] == 2
        assert status["circuit_breaker"]["failure_count"] == 0
        assert status["errors_by_type"] == {"RateLimited": 1}

        clock.advance(1.0)
        assert (await client.get("/x")).status_code == 200
    assert hits(server, "/x") == 3


async def test_rate_limiter_wait_mode_sleeps_on_the_clock(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    limit = RateLimitConfig(requests_per_second=2.0, burst_size=1, wait=True)
    async with make_client(rate_limit_config=limit) as client:
        for _ in range(3):
            assert (await client.get("/x")).status_code == 200
    assert clock.sleeps == [0.5, 0.5]
    assert hits(server, "/x") == 3


# --- status and health ----------------------------------------------------------------------------


async def test_get_status_counts_requests_and_errors(
    make_client: MakeClient, server: FaultyServer
) -> None:
    async with make_client(retry_config=ONE_ATTEMPT) as client:
        fresh = client.get_status()
        assert fresh["error_rate"] == 0.0
        assert fresh["requests_total"] == 0
        assert fresh["rate_limiter"] is None
        assert fresh["health"] is None

        await client.get("/a")
        server.set(script=[fail(404)])
        with pytest.raises(ResourceNotFoundError):
            await client.get("/a")
        await client.get("/a")
        server.set(script=[fail(503)])
        with pytest.raises(ServiceUnavailableError):
            await client.get("/a")
        status = client.get_status()

    assert status["service"] == NAME
    assert status["client_state"] == "opened"
    assert status["requests_total"] == 4
    assert status["errors_total"] == 2
    assert status["error_rate"] == 0.5
    assert status["errors_by_type"] == {
        "ResourceNotFoundError": 1,
        "ServiceUnavailableError": 1,
    }
    assert status["circuit_breaker"]["state"] == "closed"
    assert status["circuit_breaker"]["failure_count"] == 1
    assert status["average_response_time_ms"] >= 0.0
    assert client.get_metrics()["client_state"] == "closed"
    json.dumps(status)


async def test_health_check_healthy_then_degraded(
    make_client: MakeClient, server: FaultyServer
) -> None:
    async with make_client() as client:
        health = await client.health_check()
        assert set(health) == {"status", "metrics", "circuit_breaker", "rate_limiter", "health"}
        assert health["status"] == "healthy"
        assert health["health"]["total_checks"] == 1
        assert health["metrics"]["requests_total"] == 0
        assert health["circuit_breaker"]["state"] == "closed"
        assert hits(server, "/health") == 1
        json.dumps(health)

        server.set(mode="fail", status=503)
        health = await client.health_check()
        assert health["status"] == "degraded"
        assert health["health"]["consecutive_failures"] == 1
        # the probe bypasses retry and breaker
        assert hits(server, "/health") == 2
        assert client.circuit_breaker.failure_count == 0
        assert client.get_status()["health"]["status"] == "degraded"


async def test_health_check_of_a_dead_service(clock: FakeClock) -> None:
    client = EnhancedHTTPClient(NAME, f"http://127.0.0.1:{free_port()}", clock=clock)
    try:
        health = await client.health_check()
        assert health["status"] in {"degraded", "unhealthy"}
        assert health["health"]["consecutive_failures"] == 1
    finally:
        await client.aclose()


async def test_client_registers_under_its_service_name(make_client: MakeClient) -> None:
    client = make_client(service_name="reranker")
    assert DEFAULT_REGISTRY.reporters()["reranker"] is client
    assert DEFAULT_REGISTRY.statuses()["reranker"]["service"] == "reranker"
    make_client(service_name="private", registry=None)
    assert "private" not in DEFAULT_REGISTRY


# --- lifecycle ------------------------------------------------------------------------------------


async def test_requests_after_aclose_raise_runtime_error(
    make_client: MakeClient, server: FaultyServer
) -> None:
    client = make_client()
    async with client:
        await client.get("/x")
    assert client.state is ClientState.CLOSED
    with pytest.raises(RuntimeError, match="closed"):
        await client.get("/x")
    with pytest.raises(RuntimeError):
        await client.post("/x", json={})
    assert hits(server, "/x") == 1
    await client.aclose()
    await client.close()
    assert client.state is ClientState.CLOSED


async def test_lazy_open_without_async_with(make_client: MakeClient) -> None:
    client = make_client()
    assert client.state is ClientState.UNOPENED
    assert (await client.get("/lazy")).json()["ok"] is True
    assert client.state is ClientState.OPENED
    await client.aclose()
    await client.aclose()
    assert client.state is ClientState.CLOSED


async def test_aclose_before_open_then_use_is_refused(make_client: MakeClient) -> None:
    client = make_client()
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.get("/x")
    with pytest.raises(RuntimeError):
        async with client:
            pass


async def test_connections_are_reused_across_calls(
    make_client: MakeClient, server: FaultyServer
) -> None:
    async with make_client() as client:
        http = client.http
        assert isinstance(http, Http1Transport)
        first = http.pool()
        for _ in range(3):
            await client.get("/x")
        assert http.pool() is first
        assert http.pool().open_connections == 1  # one connection, kept alive and reused
    assert hits(server, "/x") == 3


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url", ["", "chroma:6003", "ftp://x", "http://", None, "http://host:99999"]
)
def test_invalid_base_url(base_url: Any) -> None:
    with pytest.raises(ValueError, match="base_url"):
        EnhancedHTTPClient(NAME, base_url)


@pytest.mark.parametrize("service_name", ["", None])
def test_empty_service_name(server: FaultyServer, service_name: Any) -> None:
    with pytest.raises(ValueError, match="service_name"):
        EnhancedHTTPClient(service_name, server.url)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: RetryConfig(max_retries=0), "max_retries"),
        (lambda: RetryConfig(max_retries=-1), "max_retries"),
        (lambda: TimeoutConfig(read=-1), "read"),
        (lambda: TimeoutConfig(connect=0), "connect"),
        (lambda: TimeoutConfig(pool=float("inf")), "pool"),
        (lambda: ConnectionPoolConfig(max_connections=0), "max_connections"),
        (lambda: ConnectionPoolConfig(max_keepalive_connections=-1), "max_keepalive_connections"),
        (lambda: ConnectionPoolConfig(keepalive_expiry=-1.0), "keepalive_expiry"),
        (lambda: CircuitBreakerConfig(failure_threshold=0), "failure_threshold"),
        (lambda: CircuitBreakerConfig(recovery_timeout=-1), "recovery_timeout"),
        (lambda: RateLimitConfig(requests_per_second=0), "requests_per_second"),
        (lambda: RateLimitConfig(burst_size=0), "burst_size"),
    ],
)
def test_invalid_config_names_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build()


def test_retry_config_rejects_a_negative_base_delay() -> None:
    with pytest.raises(ValueError, match="base_delay"):
        RetryConfig(base_delay=-1)


async def test_extra_policies_run_inside_retry_and_breaker(
    server: FaultyServer, clock: FakeClock
) -> None:
    faults = FaultInjection(failure_rate=1.0, clock=clock)
    client = EnhancedHTTPClient(
        "flaky",
        server.url,
        retry_config=RetryConfig(jitter=False),
        circuit_breaker_config=CircuitBreakerConfig(failure_threshold=3),
        extra_policies=[faults],
        clock=clock,
        registry=None,
    )
    async with client:
        with pytest.raises(InjectedFault):
            await client.get("/x")
        assert clock.sleeps == [1.0, 2.0]
        assert client.get_status()["circuit_breaker"]["state"] == "open"
        faults.enabled = False
        clock.advance(60.0)
        assert (await client.get("/x")).status_code == 200
    assert hits(server, "/x") == 1
