"""Discovery under faults, with a real etcd that is killed: cache, fallback, stale, bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from servicegrid.discovery import Discovery, EnvBackend, Registration
from servicegrid.discovery.etcd import EtcdBackend
from servicegrid.errors import DiscoveryError, UnknownServiceError
from servicegrid.settings import load_settings
from servicegrid.testing import FakeClock
from tests.support.etcd_server import EtcdServer

TIMEOUT = 0.5  # seconds each backend may take


async def registered(etcd: EtcdServer) -> EtcdBackend:
    backend = EtcdBackend("127.0.0.1", etcd.port, timeout=TIMEOUT)
    await backend.register(Registration("user-service", "10.0.0.5", 8001, "http", "users-a"))
    return backend


async def test_etcd_killed_cache_until_the_ttl_then_the_next_backend(
    etcd_server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_SERVICE_URL", "http://users.fallback:8001")
    clock = FakeClock()
    etcd = await registered(etcd_server)
    env = EnvBackend(load_settings())
    found = Discovery([etcd, env], ttl=30.0, timeout=TIMEOUT, clock=clock)
    assert (await found.resolve("USER_SERVICE")).locators == ["http://10.0.0.5:8001"]

    etcd_server.kill()
    clock.advance(20.0)
    cached = await found.resolve("USER_SERVICE")
    assert (cached.backend, cached.locators) == ("etcd", ["http://10.0.0.5:8001"])
    clock.advance(15.0)  # past the TTL: etcd is asked, fails, env answers
    answer = await found.resolve("USER_SERVICE")
    assert (answer.backend, answer.stale) == ("env", False)
    assert answer.locators == ["http://users.fallback:8001"]
    await found.aclose()


async def test_every_backend_failing_serves_stale_answers_and_bounded_errors(
    etcd_server: EtcdServer,
) -> None:
    clock = FakeClock()
    etcd = await registered(etcd_server)
    found = Discovery([etcd], ttl=30.0, max_stale=300.0, timeout=TIMEOUT, clock=clock)
    await found.resolve("USER_SERVICE")

    etcd_server.kill()
    clock.advance(120.0)
    started = time.monotonic()
    stale = await found.resolve("USER_SERVICE")
    assert stale.stale
    assert found.metadata(stale)["age_seconds"] == 120.0

    with pytest.raises(DiscoveryError, match="etcd") as caught:
        await asyncio.wait_for(found.resolve("question-service"), timeout=10)
    assert not isinstance(caught.value, UnknownServiceError)
    assert caught.value.retryable
    assert time.monotonic() - started < 10  # bounded by the per-backend timeout, twice

    clock.advance(200.0)  # now older than max_stale
    with pytest.raises(DiscoveryError):
        await found.resolve("USER_SERVICE")
    await found.aclose()


async def test_a_changed_registration_reaches_the_cache_through_the_watch(
    etcd_server: EtcdServer,
) -> None:
    etcd = await registered(etcd_server)
    found = Discovery([etcd], ttl=300.0)
    assert len((await found.resolve("USER_SERVICE")).instances) == 1
    other = EtcdBackend("127.0.0.1", etcd_server.port)
    await other.register(Registration("user-service", "10.0.0.6", 8001, "http", "users-b"))
    deadline = time.monotonic() + 10
    while len((await found.resolve("USER_SERVICE")).instances) != 2:
        assert time.monotonic() < deadline, "the watch never dropped the cached answer"
        await asyncio.sleep(0.02)
    await other.aclose()
    await found.aclose()
