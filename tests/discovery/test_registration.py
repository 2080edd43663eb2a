"""A running service registers itself in Consul and etcd, and leaves both when it stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from servicegrid.discovery import Discovery
from servicegrid.discovery.consul import ConsulBackend
from servicegrid.discovery.etcd import EtcdBackend
from servicegrid.discovery.registration import advertise_host, announced, registrars_from_settings
from servicegrid.errors import UnknownServiceError
from servicegrid.settings import load_settings
from tests.support.consul_standin import ConsulStandIn
from tests.support.etcd_server import EtcdServer


@pytest.fixture
def consul() -> Iterator[ConsulStandIn]:
    with ConsulStandIn() as running:
        yield running


async def test_a_two_protocol_service_registers_twice_in_both_registries(
    consul: ConsulStandIn, etcd_server: EtcdServer
) -> None:
    settings = load_settings(
        consul_host="127.0.0.1",
        consul_port=consul.port,
        etcd_host="127.0.0.1",
        etcd_port=etcd_server.port,
        advertise_address="127.0.0.1",
    )
    assert [r.name for r in registrars_from_settings(settings)] == ["consul", "etcd"]
    from_consul = Discovery([ConsulBackend("127.0.0.1", consul.port)])
    from_etcd = Discovery([EtcdBackend("127.0.0.1", etcd_server.port)])
    async with announced(settings, "users", port=8001, grpc_port=50061) as registrations:
        assert [r.name for r in registrations] == ["user-service", "user-service-grpc"]
        for found in (from_consul, from_etcd):
            assert (await found.resolve("USER_SERVICE")).locators == ["http://127.0.0.1:8001"]
            assert (await found.resolve("USER_SERVICE", "grpc")).locators == ["127.0.0.1:50061"]
    for found in (from_consul, from_etcd):
        found.invalidate()
        with pytest.raises(UnknownServiceError):
            await found.resolve("USER_SERVICE")
    await from_etcd.aclose()
    await from_consul.aclose()


async def test_a_registry_down_at_start_is_registered_in_once_it_is_back(
    etcd_server: EtcdServer,
) -> None:
    etcd_server.kill()
    settings = load_settings(
        etcd_host="127.0.0.1",
        etcd_port=etcd_server.port,
        advertise_address="127.0.0.1",
        discovery_timeout=0.5,
    )
    found = Discovery([EtcdBackend("127.0.0.1", etcd_server.port, timeout=0.5)])
    async with announced(settings, "embedding", port=50052):
        etcd_server.start()
        deadline = time.monotonic() + 30
        while True:
            found.invalidate()
            try:
                answer = await found.resolve("embedding-service")
            except Exception:  # not yet: etcd starting, or not yet registered
                answer = None
            if answer is not None:
                break
            assert time.monotonic() < deadline, "never registered after etcd came back"
            await asyncio.sleep(0.1)
    assert answer.locators == ["127.0.0.1:50052"]
    await found.aclose()


async def test_without_a_registry_nothing_is_registered() -> None:
    async with announced(load_settings(), "gateway", port=8000) as registrations:
        assert registrations == []


def test_the_advertised_address_defaults_to_this_host() -> None:
    assert advertise_host(load_settings(advertise_address="10.2.3.4")) == "10.2.3.4"
    assert advertise_host(load_settings())  # the host's own address, whatever it is
