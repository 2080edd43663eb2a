"""StatusRegistry and the seed 001 status endpoint, through a real FastAPI app."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from servicegrid.resilience import CircuitBreaker
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry, StatusReporter
from servicegrid.status_routes import create_status_router
from servicegrid.testing import FakeClock

SEED_001_KEYS = {"service", "state", "failure_count", "last_failure", "last_state_change"}


class BreakerClient:
    """A client as seed 001 has it: a name and a breaker whose status it reports."""

    def __init__(self, service_name: str, *, clock: FakeClock | None = None) -> None:
        self.service_name = service_name
        self.breaker = CircuitBreaker(
            name=service_name,
            failure_threshold=2,
            recovery_timeout=60.0,
            clock=clock or FakeClock(),
        )

    def get_status(self) -> dict[str, Any]:
        return self.breaker.get_status()


class Broken:
    service_name = "broken"

    def get_status(self) -> dict[str, Any]:
        raise RuntimeError("status unavailable")


class Slotted:
    __slots__ = ("service_name",)

    def __init__(self) -> None:
        self.service_name = "slotted"

    def get_status(self) -> dict[str, Any]:
        return {}


def _app(registry: StatusRegistry, **kw: Any) -> TestClient:
    app = FastAPI()
    app.include_router(create_status_router(registry, **kw))
    return TestClient(app)


def test_register_report_unregister() -> None:
    registry = StatusRegistry()
    chroma, files = BreakerClient("Chroma Server"), BreakerClient("Filesystem")
    registry.register("chroma", chroma)
    registry.register("filesystem", files)
    assert len(registry) == 2
    assert "chroma" in registry
    assert "git" not in registry
    statuses = registry.statuses()
    assert list(statuses) == ["chroma", "filesystem"]
    assert set(statuses["chroma"]) == SEED_001_KEYS
    assert statuses["chroma"]["service"] == "Chroma Server"
    assert statuses["chroma"]["state"] == "closed"

    registry.unregister("chroma")
    registry.unregister("chroma")  # unknown keys are ignored
    assert "chroma" not in registry
    assert list(registry.statuses()) == ["filesystem"]


def test_register_replaces_the_reporter_under_a_key() -> None:
    registry = StatusRegistry()
    first, second = BreakerClient("first"), BreakerClient("second")
    registry.register("svc", first)
    registry.register("svc", second)
    assert len(registry) == 1
    assert registry.statuses()["svc"]["service"] == "second"


def test_collected_reporter_disappears() -> None:
    registry = StatusRegistry()
    kept = BreakerClient("kept")
    registry.register("kept", kept)
    registry.register("gone", BreakerClient("gone"))
    gc.collect()
    assert "gone" not in registry
    assert len(registry) == 1
    assert list(registry.statuses()) == ["kept"]
    assert list(registry.reporters()) == ["kept"]


def test_failing_reporter_does_not_break_the_others() -> None:
    registry = StatusRegistry()
    ok, broken = BreakerClient("ok"), Broken()
    registry.register("ok", ok)
    registry.register("broken", broken)
    statuses = registry.statuses()
    assert statuses["ok"]["state"] == "closed"
    assert statuses["broken"] == {
        "service": "broken",
        "state": "unknown",
        "error": "RuntimeError: status unavailable",
    }


def test_reporter_must_be_weakly_referenceable() -> None:
    with pytest.raises(TypeError, match="weakly referenced"):
        StatusRegistry().register("slotted", Slotted())


def test_reporters_satisfy_the_protocol() -> None:
    assert isinstance(BreakerClient("x"), StatusReporter)


def test_concurrent_registration_from_threads() -> None:
    registry = StatusRegistry()
    clients = [BreakerClient(f"svc-{i}") for i in range(64)]
    barrier = threading.Barrier(8)

    def work(offset: int) -> None:
        barrier.wait()
        for client in clients[offset::8]:
            registry.register(client.service_name, client)
            registry.statuses()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry) == 64
    assert set(registry.statuses()) == {c.service_name for c in clients}


def test_router_serves_every_registered_status() -> None:
    registry = StatusRegistry()
    clock = FakeClock()
    chroma = BreakerClient("Chroma Server", clock=clock)
    registry.register("chroma", chroma)
    chroma.breaker.force_open()
    client = _app(registry)

    response = client.get("/v1/api/status/services")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["chroma"]
    assert set(body["chroma"]) == SEED_001_KEYS
    assert body["chroma"]["service"] == "Chroma Server"
    assert body["chroma"]["state"] == "open"


def test_router_sees_changes_and_collected_clients() -> None:
    registry = StatusRegistry()
    client = _app(registry, path="/status")
    assert client.get("/status").json() == {}
    registry.register("temp", BreakerClient("temp"))
    gc.collect()
    assert client.get("/status").json() == {}
    kept = BreakerClient("kept")
    registry.register("kept", kept)
    assert list(client.get("/status").json()) == ["kept"]


def test_default_router_uses_the_default_registry() -> None:
    reporter = BreakerClient("default-test")
    DEFAULT_REGISTRY.register("default-test", reporter)
    try:
        app = FastAPI()
        app.include_router(create_status_router())
        body = TestClient(app).get("/v1/api/status/services").json()
        assert body["default-test"]["service"] == "default-test"
    finally:
        DEFAULT_REGISTRY.unregister("default-test")
