"""ConsulBackend against the Consul stand-in on a real loopback port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from servicegrid.discovery.base import Instance, Registration, ServiceName, WireProtocol
from servicegrid.discovery.consul import ConsulBackend
from servicegrid.errors import DiscoveryError
from tests.support.consul_standin import ConsulStandIn, Misbehaviour
from tests.support.threaded_server import free_port

USERS = ServiceName.parse("users")  # user-service, and user-service-grpc for its gRPC face


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Return once ``condition()`` holds; fail if it still does not after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def consul_server() -> Iterator[ConsulStandIn]:
    with ConsulStandIn() as running:
        yield running


@pytest.fixture
def consul(consul_server: ConsulStandIn) -> ConsulStandIn:
    consul_server.reset()
    return consul_server


@pytest.fixture
async def backend(consul: ConsulStandIn) -> AsyncIterator[ConsulBackend]:
    client = ConsulBackend("127.0.0.1", consul.port, timeout=1.0)
    yield client
    await client.aclose()


def registration(
    name: str = "user-service",
    *,
    port: int = 8001,
    protocol: WireProtocol = "http",
    ttl: float = 10.0,
    path: str = "",
    tags: tuple[str, ...] = (),
    metadata: dict[str, str] | None = None,
) -> Registration:
    return Registration(
        name, "10.1.2.3", port, protocol, f"{name}-1", path, tags, metadata or {}, ttl
    )


# ---- lookup ------------------------------------------------------------------------------


async def test_lookup_reads_service_address_port_id_and_meta(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.add_entry(
        "user-service",
        port=8001,
        address="10.0.0.1",
        service_id="users-a",
        meta={"scheme": "https", "path": "/api", "zone": "a"},
    )
    [found] = await backend.lookup(USERS, "http")
    assert found == Instance("10.0.0.1", 8001, "https", "/api", "users-a")
    assert found.url == "https://10.0.0.1:8001/api"
    assert dict(found.metadata) == {"scheme": "https", "path": "/api", "zone": "a"}


async def test_an_empty_service_address_falls_back_to_the_node_address(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.add_entry("user-service", port=8001, address="", node_address="10.9.9.9")
    [found] = await backend.lookup(USERS, "http")
    assert (found.host, found.port, found.scheme, found.path) == ("10.9.9.9", 8001, "http", "")


async def test_every_passing_instance_is_found(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    for n in range(3):
        consul.add_entry("user-service", port=8001 + n, address=f"10.0.0.{n + 1}")
    found = await backend.lookup(USERS, "http")
    assert sorted(i.address for i in found) == ["10.0.0.1:8001", "10.0.0.2:8002", "10.0.0.3:8003"]


async def test_grpc_and_http_faces_are_different_consul_names(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.add_entry("user-service", port=8001, address="10.0.0.1")
    consul.add_entry("user-service-grpc", port=50061, address="10.0.0.1")
    [http] = await backend.lookup(USERS, "http")
    [grpc] = await backend.lookup(USERS, "grpc")
    assert (http.port, http.scheme) == (8001, "http")
    assert (grpc.port, grpc.scheme, grpc.locator("grpc")) == (50061, "grpc", "10.0.0.1:50061")
    paths = [r.path for r in consul.requests if r.method == "GET"]
    assert paths == ["/v1/health/service/user-service", "/v1/health/service/user-service-grpc"]
    assert all(r.query == {"passing": "true"} for r in consul.requests)


async def test_only_passing_instances_are_found(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.add_entry("user-service", port=8001, address="10.0.0.1", status="passing")
    consul.add_entry("user-service", port=8001, address="10.0.0.2", status="critical")
    consul.add_entry("user-service", port=8001, address="10.0.0.3", status="warning")
    assert [i.host for i in await backend.lookup(USERS, "http")] == ["10.0.0.1"]


async def test_an_unknown_service_is_an_empty_list(backend: ConsulBackend) -> None:
    assert await backend.lookup(ServiceName.parse("nobody-here"), "http") == []


async def test_the_token_is_sent_and_required(consul: ConsulStandIn) -> None:
    consul.token = "s3cret"
    consul.add_entry("user-service", port=8001)
    without = ConsulBackend("127.0.0.1", consul.port, timeout=1.0)
    with_token = ConsulBackend("127.0.0.1", consul.port, token="s3cret", timeout=1.0)
    try:
        with pytest.raises(
            DiscoveryError,
            match=r"answered 403 to the health query for .user-service.: the ACL token",
        ) as refused:
            await without.lookup(USERS, "http")
        assert refused.value.service == "user-service"
        assert len(await with_token.lookup(USERS, "http")) == 1
        assert consul.requests[-1].headers["x-consul-token"] == "s3cret"
    finally:
        await without.aclose()
        await with_token.aclose()


# ---- failures ----------------------------------------------------------------------------


async def test_a_server_error_is_a_discovery_error(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.misbehave(Misbehaviour(status=500, body=b"rpc error: No cluster leader"))
    with pytest.raises(DiscoveryError, match=r"Consul at 127\.0\.0\.1:\d+ answered 500") as error:
        await backend.lookup(USERS, "http")
    assert "No cluster leader" in str(error.value)
    assert error.value.service == "user-service"


async def test_an_answer_that_is_not_json_is_a_discovery_error(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.misbehave(Misbehaviour(body=b"[{not json"))
    with pytest.raises(DiscoveryError, match="not JSON"):
        await backend.lookup(USERS, "http")


_GOOD_SERVICE = '"ID": "a", "Address": "10.0.0.1", "Port": 8001'


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"Service": {}}', "expected a JSON list, got dict"),
        (b"null", "expected a JSON list, got NoneType"),
        (b"[42]", "entry 0 has no Service object"),
        (b'[{"Node": {"Address": "10.0.0.1"}}]', "entry 0 has no Service object"),
        (b'[{"Service": "user-service"}]', "entry 0 has no Service object"),
        (b'[{"Service": {"Address": "10.0.0.1", "Port": "8001"}}]', "Service.Port '8001'"),
        (b'[{"Service": {"Address": "10.0.0.1", "Port": 70000}}]', "Service.Port 70000"),
        (b'[{"Service": {"Address": "10.0.0.1", "Port": 0}}]', "Service.Port 0"),
        (b'[{"Service": {"Address": "10.0.0.1", "Port": true}}]', "Service.Port True"),
        (b'[{"Service": {"Address": "10.0.0.1"}}]', "Service.Port None"),
        (b'[{"Node": {"Address": ""}, "Service": {"Address": "", "Port": 1}}]', "neither"),
        (b'[{"Service": {"Address": 7, "Port": 1}}]', "neither"),
        (b'[{"Service": {"Address": "a b", "Port": 1}}]', "not a host name"),
        (b'[{"Service": {' + _GOOD_SERVICE.encode() + b', "Meta": [1]}}]', "Service.Meta"),
        (b'[{"Service": {' + _GOOD_SERVICE.encode() + b', "Meta": {"a": 1}}}]', "Service.Meta"),
        (b'[{"Service": {"ID": 5, "Address": "10.0.0.1", "Port": 1}}]', "Service.ID 5"),
    ],
)
async def test_a_malformed_health_list_says_what_is_wrong(
    consul: ConsulStandIn, backend: ConsulBackend, body: bytes, why: str
) -> None:
    consul.misbehave(Misbehaviour(body=body))
    with pytest.raises(DiscoveryError, match="malformed health list") as error:
        await backend.lookup(USERS, "http")
    assert why in str(error.value)


async def test_an_unreachable_agent_is_a_discovery_error_at_once() -> None:
    port = free_port()
    backend = ConsulBackend("127.0.0.1", port, timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(DiscoveryError, match=rf"Consul at 127\.0\.0\.1:{port} is unreachable"):
            await backend.lookup(USERS, "http")
    finally:
        await backend.aclose()
    assert time.monotonic() - started < 1.0


async def test_a_slow_agent_is_a_discovery_error_within_the_timeout(
    consul: ConsulStandIn,
) -> None:
    consul.misbehave(Misbehaviour(delay=10.0))
    backend = ConsulBackend("127.0.0.1", consul.port, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(DiscoveryError, match=r"Consul at 127\.0\.0\.1"):
            await backend.lookup(USERS, "http")
    finally:
        await backend.aclose()
    assert time.monotonic() - started < 1.5


# ---- registration ------------------------------------------------------------------------


async def test_register_puts_the_service_with_a_ttl_check_and_passes_it(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    entry = registration(path="/api", tags=("v1",), metadata={"zone": "a"})
    await backend.register(entry)
    [put] = [r for r in consul.requests if r.path == "/v1/agent/service/register"]
    assert put.method == "PUT"
    assert put.body == {
        "ID": "user-service-1",
        "Name": "user-service",
        "Address": "10.1.2.3",
        "Port": 8001,
        "Tags": ["v1"],
        "Meta": {"zone": "a", "scheme": "http", "path": "/api"},
        "Check": {
            "CheckID": "service:user-service-1",
            "Name": "user-service TTL",
            "TTL": "10s",
            "DeregisterCriticalServiceAfter": "1m",
        },
    }
    assert consul.check_status("service:user-service-1") == "passing"
    [found] = await backend.lookup(USERS, "http")
    assert found == Instance("10.1.2.3", 8001, "http", "/api", "user-service-1")


async def test_a_grpc_registration_is_found_as_the_grpc_face(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    await backend.register(registration("user-service-grpc", port=50061, protocol="grpc"))
    assert await backend.lookup(USERS, "http") == []
    [found] = await backend.lookup(USERS, "grpc")
    assert (found.port, found.scheme) == (50061, "grpc")


async def test_a_deregistered_service_is_no_longer_found(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    entry = registration()
    await backend.register(entry)
    assert len(await backend.lookup(USERS, "http")) == 1
    await backend.deregister(entry)
    assert await backend.lookup(USERS, "http") == []
    assert consul.check_status("service:user-service-1") is None
    await backend.deregister(entry)  # idempotent: Consul's 404 is not an error


async def test_the_check_is_kept_passing_past_its_ttl(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    await backend.register(registration(ttl=0.6))
    check = "service:user-service-1"

    async def passed_again() -> bool:
        return consul.passes(check) >= 5  # 1 at once, then every 0.2 s: past two TTLs

    await eventually(passed_again, within=5.0)
    assert consul.check_status(check) == "passing"
    assert len(await backend.lookup(USERS, "http")) == 1


async def test_a_registration_no_longer_passed_goes_critical_after_its_ttl(
    consul: ConsulStandIn,
) -> None:
    owner = ConsulBackend("127.0.0.1", consul.port, timeout=1.0)
    await owner.register(registration(ttl=1.0))
    await owner.aclose()  # stops passing; the service stays registered
    observer = ConsulBackend("127.0.0.1", consul.port, timeout=1.0)
    try:
        assert len(await observer.lookup(USERS, "http")) == 1

        async def gone() -> bool:
            return await observer.lookup(USERS, "http") == []

        await eventually(gone, within=4.0)
        assert consul.check_status("service:user-service-1") == "critical"
    finally:
        await observer.aclose()


async def test_an_agent_that_forgot_the_service_gets_it_registered_again(
    consul: ConsulStandIn, backend: ConsulBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="servicegrid.discovery")
    await backend.register(registration(ttl=0.6))
    consul.forget_services()  # a restarted agent: the next pass answers 404

    async def back() -> bool:
        return len(await backend.lookup(USERS, "http")) == 1

    await eventually(back, within=5.0)
    assert consul.check_status("service:user-service-1") == "passing"
    assert "registering it again" in caplog.text


async def test_failed_passes_are_logged_and_passing_resumes(
    consul: ConsulStandIn, backend: ConsulBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="servicegrid.discovery")
    await backend.register(registration(ttl=0.6))
    consul.misbehave(Misbehaviour(status=500))

    async def logged() -> bool:
        return "TTL pass of 'user-service-1' failed" in caplog.text

    await eventually(logged, within=5.0)
    consul.behave()
    passes = consul.passes("service:user-service-1")

    async def resumed() -> bool:
        return consul.passes("service:user-service-1") > passes + 1

    await eventually(resumed, within=5.0)
    assert consul.check_status("service:user-service-1") == "passing"


async def test_register_with_the_agent_down_is_a_discovery_error() -> None:
    backend = ConsulBackend("127.0.0.1", free_port(), timeout=1.0)
    try:
        with pytest.raises(DiscoveryError, match="unreachable") as error:
            await backend.register(registration())
        assert error.value.service == "user-service"
    finally:
        await backend.aclose()


async def test_a_refused_registration_is_a_discovery_error(
    consul: ConsulStandIn, backend: ConsulBackend
) -> None:
    consul.token = "s3cret"
    with pytest.raises(DiscoveryError, match="403"):
        await backend.register(registration())


async def test_deregister_never_raises_and_logs_when_the_agent_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="servicegrid.discovery")
    backend = ConsulBackend("127.0.0.1", free_port(), timeout=1.0)
    try:
        await backend.deregister(registration())
    finally:
        await backend.aclose()
    assert "could not deregister 'user-service-1'" in caplog.text


async def test_aclose_is_idempotent_and_leaves_a_given_transport_open(
    consul: ConsulStandIn,
) -> None:
    from servicegrid.transports.http1 import Http1Transport

    transport = Http1Transport(trust_env=False)
    backend = ConsulBackend("127.0.0.1", consul.port, transport=transport)
    await backend.register(registration())
    await backend.aclose()
    await backend.aclose()
    other = ConsulBackend("127.0.0.1", consul.port, transport=transport)
    assert len(await other.lookup(USERS, "http")) == 1
    await transport.aclose()


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="scheme"):
        ConsulBackend("127.0.0.1", scheme="ftp")
    with pytest.raises(ValueError, match="timeout"):
        ConsulBackend("127.0.0.1", timeout=0)
