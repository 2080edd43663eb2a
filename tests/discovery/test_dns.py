"""DnsBackend against a real DNS server on a loopback UDP port."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from servicegrid.discovery import dns
from servicegrid.discovery.base import Instance, ServiceName
from servicegrid.discovery.dns import DnsBackend, system_nameserver
from servicegrid.errors import DiscoveryError
from tests.support.dns_server import DnsServer, Mode
from tests.support.fixtures import started_per_module

USERS = ServiceName.parse("users")  # HTTP 8001, gRPC 50061 (as user-service-grpc)
NAME = "user-service.default.svc.cluster.local"
GRPC_NAME = "user-service-grpc.default.svc.cluster.local"


dns_server = started_per_module(DnsServer)


@pytest.fixture
def server(dns_server: DnsServer) -> DnsServer:
    dns_server.reset()
    return dns_server


@pytest.fixture
def backend(server: DnsServer) -> DnsBackend:
    return DnsBackend(server=server.address, timeout=1.0)


# ---- SRV ---------------------------------------------------------------------------------


async def test_srv_targets_from_the_additional_section_at_the_srv_port(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_srv(f"_http._tcp.{NAME}", f"pod-a.{NAME}", 8080)
    server.add_srv(f"_http._tcp.{NAME}", f"pod-b.{NAME}", 8081)
    server.add_a(f"pod-a.{NAME}", "10.0.0.1")
    server.add_aaaa(f"pod-b.{NAME}", "fd00::2")
    found = await backend.lookup(USERS, "http")
    assert found == [
        Instance("10.0.0.1", 8080, "http", "", f"pod-a.{NAME}/10.0.0.1"),
        Instance("fd00::2", 8081, "http", "", f"pod-b.{NAME}/fd00::2"),
    ]
    assert found[1].url == "http://[fd00::2]:8081"
    assert dict(found[0].metadata) == {"target": f"pod-a.{NAME}", "priority": "0", "weight": "100"}
    assert server.queries == [(f"_http._tcp.{NAME}", "SRV")]  # nothing more to ask


async def test_srv_targets_without_additional_records_are_resolved(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_srv(f"_http._tcp.{NAME}", "users.internal", 9000, additional=False)
    server.add_a("users.internal", "10.0.0.7", "10.0.0.8")
    server.add_aaaa("users.internal", "fd00::7")
    found = await backend.lookup(USERS, "http")
    assert [(i.host, i.port) for i in found] == [
        ("10.0.0.7", 9000),
        ("10.0.0.8", 9000),
        ("fd00::7", 9000),
    ]
    assert sorted(server.queries[1:]) == [("users.internal", "A"), ("users.internal", "AAAA")]


async def test_srv_records_come_in_priority_order_each_address_once(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_srv(f"_http._tcp.{NAME}", "backup.internal", 8001, priority=20)
    server.add_srv(f"_http._tcp.{NAME}", "main.internal", 8001, priority=10)
    server.add_srv(f"_http._tcp.{NAME}", "main.internal", 8001, priority=10)
    server.add_a("backup.internal", "10.0.0.2")
    server.add_a("main.internal", "10.0.0.1")
    found = await backend.lookup(USERS, "http")
    assert [i.host for i in found] == ["10.0.0.1", "10.0.0.2"]


async def test_grpc_and_http_faces_ask_their_own_srv_names(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_srv(f"_http._tcp.{NAME}", f"pod.{NAME}", 8001)
    server.add_srv(f"_grpc._tcp.{GRPC_NAME}", f"pod.{NAME}", 50061)
    server.add_a(f"pod.{NAME}", "10.0.0.1")
    [http] = await backend.lookup(USERS, "http")
    [grpc] = await backend.lookup(USERS, "grpc")
    assert (http.port, http.scheme) == (8001, "http")
    assert (grpc.port, grpc.scheme, grpc.locator("grpc")) == (50061, "grpc", "10.0.0.1:50061")
    assert server.queries == [(f"_http._tcp.{NAME}", "SRV"), (f"_grpc._tcp.{GRPC_NAME}", "SRV")]


async def test_an_unknown_service_is_found_by_its_srv_record(
    server: DnsServer, backend: DnsBackend
) -> None:
    name = "inventory.default.svc.cluster.local"
    server.add_srv(f"_http._tcp.{name}", f"pod.{name}", 7000)
    server.add_a(f"pod.{name}", "10.0.0.3")
    [found] = await backend.lookup(ServiceName.parse("inventory"), "http")
    assert found.address == "10.0.0.3:7000"


# ---- A/AAAA fallback ---------------------------------------------------------------------


async def test_without_srv_a_and_aaaa_records_at_the_catalogue_port(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_a(NAME, "10.0.0.9")
    server.add_aaaa(NAME, "fd00::9")
    found = await backend.lookup(USERS, "http")
    assert [(i.host, i.port, i.scheme) for i in found] == [
        ("10.0.0.9", 8001, "http"),
        ("fd00::9", 8001, "http"),
    ]
    assert server.queries[0] == (f"_http._tcp.{NAME}", "SRV")


async def test_the_grpc_face_of_a_two_protocol_service_falls_back_to_its_grpc_port(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_a(GRPC_NAME, "10.0.0.9")
    [found] = await backend.lookup(USERS, "grpc")
    assert (found.host, found.port, found.scheme) == ("10.0.0.9", 50061, "grpc")


@pytest.mark.parametrize(
    ("service", "protocol", "address", "url"),
    [
        ("embedding", "grpc", "embedding-service", "http://10.0.0.5:50052"),
        ("integration", "http", "integration-service", "http://10.0.0.5:8005/api"),
    ],
)
async def test_catalogue_ports_and_base_paths(
    server: DnsServer,
    backend: DnsBackend,
    service: str,
    protocol: Any,
    address: str,
    url: str,
) -> None:
    server.add_a(f"{address}.default.svc.cluster.local", "10.0.0.5")
    [found] = await backend.lookup(ServiceName.parse(service), protocol)
    assert found.url == url


async def test_addresses_without_a_known_port_are_a_discovery_error(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_a("inventory.default.svc.cluster.local", "10.0.0.3")
    with pytest.raises(DiscoveryError, match="knows no http port") as error:
        await backend.lookup(ServiceName.parse("inventory"), "http")
    assert error.value.service == "inventory"


async def test_a_name_nothing_answers_for_is_an_empty_list(
    server: DnsServer, backend: DnsBackend
) -> None:
    assert await backend.lookup(USERS, "http") == []
    assert await backend.lookup(ServiceName.parse("inventory"), "http") == []
    assert server.queries[0] == (f"_http._tcp.{NAME}", "SRV")
    assert sorted(server.queries[1:3]) == [(NAME, "A"), (NAME, "AAAA")]


async def test_namespace_and_domain_make_the_name(server: DnsServer) -> None:
    backend = DnsBackend("prod", server=server.address, domain="cluster.example.", timeout=1.0)
    server.add_a("user-service.prod.cluster.example", "10.0.0.4")
    [found] = await backend.lookup(USERS, "http")
    assert found.address == "10.0.0.4:8001"
    assert backend.fqdn(USERS, "grpc") == "user-service-grpc.prod.cluster.example"


# ---- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("garbage", "malformed message"),
        ("cut", "malformed message"),
        ("servfail", "answered SERVFAIL"),
        ("wrong-id", "answered with id"),
        ("truncated", "truncated"),
        ("query", "not an answer"),
        ("drop", "did not answer within 0.4s"),
    ],
)
async def test_a_bad_answer_or_none_is_a_discovery_error_within_the_timeout(
    server: DnsServer, mode: Mode, why: str
) -> None:
    server.add_a(NAME, "10.0.0.1")
    server.mode = mode
    backend = DnsBackend(server=server.address, timeout=0.4)
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=rf"DNS server 127\.0\.0\.1:{server.port} ") as error:
        await backend.lookup(USERS, "http")
    assert time.monotonic() - started < 1.0
    assert why in str(error.value)
    assert f"SRV _http._tcp.{NAME}" in str(error.value)
    assert error.value.service == "user-service"


async def test_an_srv_record_with_port_0_is_a_discovery_error(
    server: DnsServer, backend: DnsBackend
) -> None:
    server.add_srv(f"_http._tcp.{NAME}", f"pod.{NAME}", 0)
    server.add_a(f"pod.{NAME}", "10.0.0.1")
    with pytest.raises(DiscoveryError, match="with port 0"):
        await backend.lookup(USERS, "http")


async def test_a_lost_datagram_is_sent_again(server: DnsServer) -> None:
    server.add_a(NAME, "10.0.0.1")
    server.drop_next = 1
    backend = DnsBackend(server=server.address, timeout=0.4)
    [found] = await backend.lookup(USERS, "http")
    assert found.host == "10.0.0.1"
    assert server.queries[:2] == [(f"_http._tcp.{NAME}", "SRV")] * 2


async def test_silence_is_asked_twice_before_giving_up(server: DnsServer) -> None:
    server.mode = "drop"
    with pytest.raises(DiscoveryError, match="did not answer"):
        await DnsBackend(server=server.address, timeout=0.3).lookup(USERS, "http")
    assert server.queries == [(f"_http._tcp.{NAME}", "SRV")] * 2


async def test_a_port_nobody_listens_on_is_a_discovery_error_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=rf"DNS server 127\.0\.0\.1:{port} "):
        await DnsBackend(server=("127.0.0.1", port), timeout=1.0).lookup(USERS, "http")
    assert time.monotonic() - started < 1.5


# ---- the system resolver -----------------------------------------------------------------


def test_system_nameserver_is_the_first_nameserver_of_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nsearch default.svc.cluster.local svc.cluster.local\n"
        "options ndots:5\nnameserver 10.96.0.10  # kube-dns\nnameserver 8.8.8.8\n"
    )
    assert system_nameserver(str(conf)) == ("10.96.0.10", 53)
    conf.write_text("search example.com\n")
    assert system_nameserver(str(conf)) is None
    assert system_nameserver(str(tmp_path / "missing")) is None


def test_without_a_server_the_resolv_conf_nameserver_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver fd00::53\n")
    monkeypatch.setattr(dns, "RESOLV_CONF", str(conf))
    backend = DnsBackend()
    assert backend.server == ("fd00::53", 53)
    assert "DNS server [fd00::53]:53" in repr(backend)


async def test_without_any_nameserver_getaddrinfo_gives_addresses_and_no_srv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns, "RESOLV_CONF", str(tmp_path / "missing"))
    asked: list[str] = []

    async def getaddrinfo(host: str, port: object, **kw: object) -> list[Any]:
        asked.append(host)
        if host != NAME:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        stream = (socket.SOCK_STREAM, 6, "")
        return [
            (socket.AF_INET, *stream, ("10.0.0.1", 0)),
            (socket.AF_INET6, *stream, ("fd00::1", 0, 0, 0)),
            (socket.AF_INET, *stream, ("10.0.0.1", 0)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    backend = DnsBackend()
    assert backend.server is None
    found = await backend.lookup(USERS, "http")
    assert [i.address for i in found] == ["10.0.0.1:8001", "[fd00::1]:8001"]
    assert await backend.lookup(ServiceName.parse("questions"), "http") == []
    assert asked == [NAME, "question-service.default.svc.cluster.local"]


async def test_a_failing_system_resolver_is_a_discovery_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns, "RESOLV_CONF", str(tmp_path / "missing"))

    async def getaddrinfo(host: str, port: object, **kw: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    with pytest.raises(DiscoveryError, match="system resolver failed"):
        await DnsBackend().lookup(USERS, "http")


# ---- the rest ----------------------------------------------------------------------------


async def test_aclose_is_an_idempotent_no_op(backend: DnsBackend) -> None:
    await backend.aclose()
    await backend.aclose()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"namespace": ""}, "namespace"),
        ({"namespace": "has space"}, "namespace"),
        ({"domain": "bad..domain"}, "domain"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_constructor_checks_its_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DnsBackend(server=("127.0.0.1", 53), **kwargs)
