"""EtcdBackend against a real etcd: lookups, leases kept alive and lost, watches, outages."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace

import aetcd  # type: ignore[import-untyped]
import pytest

from servicegrid.discovery.base import (
    Backend,
    Instance,
    Registrar,
    Registration,
    ServiceName,
    WireProtocol,
)
from servicegrid.discovery.etcd import DEFAULT_PREFIX, EtcdBackend
from servicegrid.errors import ClientStateError, DiscoveryError
from tests.support.etcd_server import EtcdServer

pytestmark = pytest.mark.timeout(60)

USERS = ServiceName.parse("users")  # user-service, and user-service-grpc for its gRPC face


async def eventually(condition: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Return once ``condition()`` holds; fail if it still does not after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def registration(
    instance_id: str = "users-1",
    *,
    name: str = "user-service",
    port: int = 8001,
    protocol: WireProtocol = "http",
    ttl: float = 10.0,
) -> Registration:
    return Registration(
        name=name,
        host="10.0.0.7",
        port=port,
        protocol=protocol,
        id=instance_id,
        path="/api" if protocol == "http" else "",
        metadata={"zone": "a"},
        ttl=ttl,
    )


@pytest.fixture
async def backend(etcd_server: EtcdServer) -> AsyncIterator[EtcdBackend]:
    etcd = EtcdBackend(etcd_server.host, etcd_server.port, timeout=1.0)
    yield etcd
    await etcd.aclose()


@pytest.fixture
async def raw(etcd_server: EtcdServer) -> AsyncIterator[aetcd.Client]:
    """A plain aetcd client, to read and write keys behind the backend's back."""
    client = aetcd.Client(host=etcd_server.host, port=etcd_server.port, timeout=2)
    yield client
    await client.close()


async def ids(backend: EtcdBackend, protocol: WireProtocol = "http") -> list[str]:
    return [instance.id for instance in await backend.lookup(USERS, protocol)]


# ---- lookup and registration ------------------------------------------------------------


async def test_a_registered_instance_is_found_as_the_documented_key_and_value(
    backend: EtcdBackend, raw: aetcd.Client
) -> None:
    await backend.register(registration())
    [found] = await backend.lookup(USERS, "http")
    assert found == Instance("10.0.0.7", 8001, "http", "/api", "users-1")
    assert found.metadata == {"zone": "a"}
    stored = await raw.get(f"{DEFAULT_PREFIX}user-service/users-1".encode())
    assert json.loads(stored.value) == {
        "host": "10.0.0.7",
        "port": 8001,
        "scheme": "http",
        "path": "/api",
        "metadata": {"zone": "a"},
    }
    assert stored.lease != 0  # bound to a lease, so it dies with the process


async def test_instances_come_sorted_by_id_and_each_face_under_its_own_name(
    backend: EtcdBackend,
) -> None:
    await backend.register(registration("users-b", port=8002))
    await backend.register(registration("users-a", port=8001))
    await backend.register(
        registration("users-a", name="user-service-grpc", port=50061, protocol="grpc")
    )
    assert [(i.id, i.port) for i in await backend.lookup(USERS, "http")] == [
        ("users-a", 8001),
        ("users-b", 8002),
    ]
    assert await backend.lookup(USERS, "grpc") == [
        Instance("10.0.0.7", 50061, "grpc", "", "users-a")
    ]
    assert await backend.lookup(ServiceName.parse("nobody-here"), "http") == []


async def test_deregister_removes_it_and_is_idempotent(backend: EtcdBackend) -> None:
    await backend.register(registration("users-1"))
    await backend.register(registration("users-2"))
    await backend.deregister(registration("users-1"))
    assert await ids(backend) == ["users-2"]
    await backend.deregister(registration("users-1"))  # already gone
    await backend.deregister(registration("never-registered"))
    assert await ids(backend) == ["users-2"]


async def test_a_kept_alive_lease_outlives_its_ttl_and_a_dead_one_does_not(
    backend: EtcdBackend,
) -> None:
    await backend.register(registration("alive", ttl=2))

    def register_then_die() -> None:
        # its own event loop, ended without deregistering: a process that was killed
        asyncio.run(backend.register(registration("dead", ttl=2)))

    await asyncio.to_thread(register_then_die)
    assert await ids(backend) == ["alive", "dead"]
    started = time.monotonic()

    async def dead_is_gone() -> bool:
        return await ids(backend) == ["alive"]

    await eventually(dead_is_gone, within=8.0)
    assert time.monotonic() - started > 1.0  # it lived for (about) its TTL, not less
    assert await ids(backend) == ["alive"]  # renewed past its 2 s TTL


async def test_one_backend_serves_successive_event_loops(
    backend: EtcdBackend, etcd_server: EtcdServer
) -> None:
    await backend.register(registration())

    def lookup_in_a_new_loop() -> list[Instance]:
        return asyncio.run(backend.lookup(USERS, "http"))

    for _ in range(2):
        assert [i.id for i in await asyncio.to_thread(lookup_in_a_new_loop)] == ["users-1"]
    assert await ids(backend) == ["users-1"]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"id": "zone-a/users-1"}, "id"),
        ({"id": ""}, "id"),
        ({"name": "user/service"}, "name"),
        ({"ttl": 0.0}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
    ],
)
async def test_a_registration_that_breaks_the_layout_is_refused_before_any_call(
    backend: EtcdBackend, change: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        await backend.register(replace(registration(), **change))  # type: ignore[arg-type]
    assert await ids(backend) == []


def test_it_is_a_backend_and_a_registrar() -> None:
    etcd = EtcdBackend("127.0.0.1")
    assert isinstance(etcd, Backend)
    assert isinstance(etcd, Registrar)
    assert etcd.name == "etcd"
    assert etcd.prefix == DEFAULT_PREFIX
    assert EtcdBackend("127.0.0.1", prefix="/mine").prefix == "/mine/"


# ---- malformed values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"port": 8001}', "'host'"),
        (b'{"host": "10.0.0.9"}', "'port'"),
        (b'{"host": "10.0.0.9", "port": "8001"}', "'port'"),
        (b'{"host": "10.0.0.9", "port": 70000}', "'port'"),
        (b'{"host": "10.0.0.9", "port": 8001, "scheme": "ftp"}', "'scheme'"),
        (b'{"host": "10.0.0.9", "port": 8001, "metadata": {"a": 1}}', "'metadata'"),
        (b'{"host": "a b", "port": 8001}', "host"),
        (b"\xff\xfe", "not JSON"),
    ],
)
async def test_a_malformed_value_is_a_discovery_error_naming_the_key(
    backend: EtcdBackend, raw: aetcd.Client, value: bytes, complaint: str
) -> None:
    key = f"{DEFAULT_PREFIX}user-service/broken"
    await raw.put(key.encode(), value)
    with pytest.raises(DiscoveryError) as caught:
        await backend.lookup(USERS, "http")
    assert key in str(caught.value)
    assert complaint in str(caught.value)
    assert caught.value.service == "user-service"


async def test_a_malformed_value_beside_good_ones_is_logged_and_left_out(
    backend: EtcdBackend, raw: aetcd.Client, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.register(registration())
    key = f"{DEFAULT_PREFIX}user-service/broken"
    await raw.put(key.encode(), b"{")
    with caplog.at_level(logging.WARNING, logger="servicegrid.discovery"):
        assert await ids(backend) == ["users-1"]
    assert key in caplog.text


async def test_a_key_deeper_than_the_layout_is_malformed(
    backend: EtcdBackend, raw: aetcd.Client
) -> None:
    key = f"{DEFAULT_PREFIX}user-service/zone-a/users-1"
    await raw.put(key.encode(), b'{"host": "10.0.0.9", "port": 8001}')
    with pytest.raises(DiscoveryError, match="zone-a/users-1"):
        await backend.lookup(USERS, "http")


# ---- watching ---------------------------------------------------------------------------


async def test_the_watch_reports_registrations_and_deregistrations(backend: EtcdBackend) -> None:
    changes: list[int] = []
    backend.watch(USERS, "http", lambda: changes.append(1))
    backend.watch(USERS, "grpc", lambda: changes.append(100))  # another name: never told

    async def told_of_a_registration() -> bool:
        # the watch opens in the background: put again until it has seen one
        await backend.register(registration())
        return bool(changes)

    await eventually(told_of_a_registration, within=5.0)
    changes.clear()

    async def told() -> bool:
        return bool(changes)

    await backend.deregister(registration())
    await eventually(told, within=5.0)
    assert set(changes) == {1}


async def test_a_watch_reopens_after_etcd_restarts_and_reports_the_gap(
    backend: EtcdBackend, etcd_server: EtcdServer
) -> None:
    changes: list[int] = []
    backend.watch(USERS, "http", lambda: changes.append(1))

    async def told_of_a_registration() -> bool:
        await backend.register(registration())
        return bool(changes)

    await eventually(told_of_a_registration, within=5.0)
    etcd_server.kill()
    changes.clear()
    etcd_server.start()

    async def told() -> bool:
        return bool(changes)

    await eventually(told, within=10.0)  # reopened: changes may have been missed meanwhile
    changes.clear()
    await backend.deregister(registration())
    await eventually(told, within=5.0)


# ---- outages ----------------------------------------------------------------------------


async def test_with_etcd_down_lookup_and_register_raise_discovery_error(
    backend: EtcdBackend, etcd_server: EtcdServer
) -> None:
    await backend.register(registration())
    etcd_server.kill()
    async with asyncio.timeout(10):
        with pytest.raises(DiscoveryError, match=r"could not be reached") as caught:
            await backend.lookup(USERS, "http")
        assert f"etcd at {etcd_server.host}:{etcd_server.port}" in str(caught.value)
        assert caught.value.service == "user-service"
        assert caught.value.__cause__ is not None
        with pytest.raises(DiscoveryError, match=r"could not be reached"):
            await backend.register(registration("users-2"))
        await backend.deregister(registration())  # logs, never raises


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: no RST, only silence."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


async def test_an_etcd_that_never_answers_is_given_up_on_after_the_timeout(
    silent_port: int,
) -> None:
    etcd = EtcdBackend("127.0.0.1", silent_port, timeout=0.5)
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):
            with pytest.raises(DiscoveryError, match=r"no answer within 0.5 s") as caught:
                await etcd.lookup(USERS, "http")
        assert time.monotonic() - started < 5.0
        assert isinstance(caught.value.__cause__, TimeoutError)
    finally:
        await etcd.aclose()


async def test_registrations_come_back_after_etcd_restarts_even_with_its_data_lost(
    backend: EtcdBackend, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.register(registration(ttl=2))

    async def registered() -> bool:
        try:
            return await ids(backend) == ["users-1"]
        except DiscoveryError:
            return False

    # a crash: etcd keeps its leases on disk, and the keep-alive carries on renewing
    etcd_server.kill()
    etcd_server.start()
    await eventually(registered, within=10.0)

    # the data lost too (no volume): the lease is gone, so the keep-alive registers again
    etcd_server.kill()
    etcd_server.wipe()
    with caplog.at_level(logging.WARNING, logger="servicegrid.discovery"):
        etcd_server.start()  # a new, empty cluster
        await eventually(registered, within=10.0)
    assert "etcd lost the lease of /servicegrid/services/user-service/users-1" in caplog.text


# ---- lifecycle --------------------------------------------------------------------------


async def test_aclose_is_idempotent_and_ends_the_backend(backend: EtcdBackend) -> None:
    await backend.register(registration(ttl=2))
    backend.watch(USERS, "http", lambda: None)
    await backend.aclose()
    await backend.aclose()
    with pytest.raises(ClientStateError):
        await backend.lookup(USERS, "http")
    with pytest.raises(ClientStateError):
        backend.watch(USERS, "http", lambda: None)
