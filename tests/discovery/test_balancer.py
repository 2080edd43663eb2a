"""Client-side balancing over discovered instances: real HTTP and gRPC servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicegrid.clients import EmbeddingClient, ServiceClientConfig
from servicegrid.clients.enhanced import EnhancedHTTPClient, RetryConfig
from servicegrid.clients.resilient import ResilientServiceClient
from servicegrid.discovery import Discovery, StaticBackend
from servicegrid.discovery.balancer import BalancedTransport, parse_discovery_url
from servicegrid.errors import ConnectError, ConnectionLost, ServiceError, ServiceUnavailable
from servicegrid.resilience import CircuitBreakerConfig
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.mock import MockTransport
from tests.runtime.conftest import build
from tests.support.faulty_server import FaultyServer, free_port


@pytest.fixture
def two_servers() -> Iterator[tuple[FaultyServer, FaultyServer]]:
    with FaultyServer() as first, FaultyServer() as second:
        yield first, second


def static(*urls: str, name: str = "user-service") -> tuple[Discovery, StaticBackend]:
    backend = StaticBackend({name: list(urls)})
    return Discovery([backend]), backend


def client_for(discovery: Discovery, **options: object) -> EnhancedHTTPClient:
    return EnhancedHTTPClient(
        "users",
        "discovery:///user-service",
        discovery=discovery,
        retry_config=RetryConfig(max_retries=3, base_delay=0.0, max_delay=0.0, jitter=False),
        registry=None,
        **options,  # type: ignore[arg-type]
    )


async def test_calls_spread_over_every_instance(
    two_servers: tuple[FaultyServer, FaultyServer],
) -> None:
    first, second = two_servers
    discovery, _ = static(first.url, second.url)
    async with client_for(discovery) as client:
        for _ in range(20):
            response = await client.get("/users/user-123")
            assert response.json()["path"] == "/users/user-123"
    assert first.behaviour.total_hits == second.behaviour.total_hits == 10


async def test_a_dead_instance_is_failed_over_then_ejected(first_alive: FaultyServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    discovery, _ = static(dead, first_alive.url)
    async with client_for(discovery) as client:
        for _ in range(30):
            assert (await client.get("/ping")).status_code == 200
        balancer = client.http
        assert isinstance(balancer, BalancedTransport)
        by_address = {entry["address"]: entry for entry in balancer.instances()}
    dead_entry = by_address[dead.removeprefix("http://")]
    assert dead_entry["ejected"]
    assert dead_entry["state"] == "open"
    assert dead_entry["calls"] == 3  # three refusals opened its breaker; no traffic after
    assert first_alive.behaviour.total_hits == 30


@pytest.fixture
def first_alive() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


async def test_an_instance_answering_503_is_ejected_and_probed_back(
    two_servers: tuple[FaultyServer, FaultyServer],
) -> None:
    sick, healthy = two_servers
    sick.set(mode="fail", status=503)
    discovery, _ = static(sick.url, healthy.url)
    async with client_for(discovery) as client:
        for _ in range(20):
            assert (await client.get("/ping")).status_code == 200
        balancer = client.http
        assert isinstance(balancer, BalancedTransport)
        sick_entry = balancer.instances()[0]
        assert sick_entry["ejected"]
        assert sick.behaviour.total_hits == 3
        assert client.circuit_breaker.state.value == "closed"  # the service as a whole is fine


async def test_the_instance_set_follows_discovery(
    two_servers: tuple[FaultyServer, FaultyServer],
) -> None:
    first, second = two_servers
    discovery, backend = static(first.url)
    async with client_for(discovery) as client:
        await client.get("/a")
        backend.set("user-service", [second.url], "http")
        discovery.invalidate()
        await client.get("/b")
        await client.get("/c")
    assert (first.behaviour.total_hits, second.behaviour.total_hits) == (1, 2)


async def test_every_instance_ejected_fails_fast_with_when_to_come_back() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    discovery, _ = static(*dead)
    balancer = BalancedTransport(
        "user-service",
        protocol="http",
        discovery=discovery,
        inner=Http1Transport(),
        breaker=CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30.0),
    )
    call = Call("GET", "discovery:///user-service/ping", timeout=2.0)
    with pytest.raises(ConnectError):  # the refusals themselves
        await balancer.asend(call)
    with pytest.raises(ServiceUnavailable, match="every instance") as caught:
        await balancer.asend(call)
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 30.0
    await balancer.aclose()


def test_the_sync_client_balances_too(two_servers: tuple[FaultyServer, FaultyServer]) -> None:
    first, second = two_servers
    discovery, _ = static(first.url, second.url)
    client = ResilientServiceClient(
        "discovery:///user-service", service_name="users", discovery=discovery, registry=None
    )
    for _ in range(6):
        assert client.get("/users").json()["path"] == "/users"
    assert first.behaviour.total_hits == second.behaviour.total_hits == 3


async def test_grpc_clients_balance_over_discovered_targets() -> None:
    one, two = await build(), await build()
    for served in (one, two):
        await served.running.server.start()
    try:
        backend = StaticBackend(
            {
                "embedding-service": [
                    f"127.0.0.1:{one.running.port}",
                    f"127.0.0.1:{two.running.port}",
                ]
            }
        )
        config = ServiceClientConfig("discovery:///embedding-service", timeout=5.0)
        async with EmbeddingClient(
            config=config, discovery=Discovery([backend]), registry=None
        ) as client:
            for index in range(10):
                await client.generate_embeddings([f"text {index}"])
            health = await client.health_check()
    finally:
        for served in (one, two):
            await served.running.server.stop(0)
            await served.channel.close()
    assert len(one.servicer.calls) == len(two.servicer.calls) == 5
    assert health["status"] in ("healthy", "unhealthy")  # answered, through one instance


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("discovery:///user-service", ("user-service", "")),
        ("discovery:///integration-service/api/", ("integration-service", "/api")),
    ],
)
def test_discovery_urls_parse(url: str, parsed: tuple[str, str]) -> None:
    assert parse_discovery_url(url) == parsed


@pytest.mark.parametrize("bad", ["discovery:///", "discovery://", "http://x"])
def test_bad_discovery_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"discovery:///<service>|gRPC target"):
        parse_discovery_url(bad)
    with pytest.raises(ValueError, match=r"discovery:///<service>|gRPC target"):
        ServiceClientConfig(bad)


async def test_the_integration_client_balances_too(
    two_servers: tuple[FaultyServer, FaultyServer],
) -> None:
    from servicegrid.clients.integration import ServiceIntegrationClient

    first, second = two_servers
    discovery, _ = static(f"{first.url}/api", f"{second.url}/api", name="integration-service")
    async with ServiceIntegrationClient(
        "discovery:///integration-service", discovery=discovery
    ) as client:
        for _ in range(4):
            health = await client.get_integration_health()
            assert health["path"] == "/api/health"
    assert first.behaviour.total_hits == second.behaviour.total_hits == 2


@pytest.mark.parametrize(
    ("method", "error", "moves_on"),
    [
        ("GET", ConnectionLost("reset"), True),
        ("DELETE", ConnectionLost("reset"), True),
        ("POST", ConnectionLost("reset"), False),  # it may have arrived: never sent twice
        ("PATCH", ConnectionLost("reset"), False),
        ("POST", ConnectError("refused"), True),  # nothing was sent
    ],
)
async def test_only_what_is_safe_to_send_again_moves_to_the_next_instance(
    method: str, error: ServiceError, moves_on: bool
) -> None:
    hosts: list[str] = []

    def answer(call: Call) -> Reply:
        hosts.append(call.url.split("/")[2])
        if len(hosts) == 1:
            raise error
        return Reply(200, body=b"{}")

    discovery, _ = static("http://10.0.0.1:8001", "http://10.0.0.2:8001")
    balancer = BalancedTransport(
        "user-service", protocol="http", discovery=discovery, inner=MockTransport(answer)
    )
    call = Call(method, "discovery:///user-service/users/user-123")
    if moves_on:
        assert (await balancer.asend(call)).status == 200
        assert len(set(hosts)) == 2
    else:
        with pytest.raises(type(error)):
            await balancer.asend(call)
        assert len(hosts) == 1
    await balancer.aclose()
