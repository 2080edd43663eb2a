"""HealthChecker (seed 000) against healthy, not-serving and dead targets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC

import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from servicegrid.clients.health import HealthChecker, HealthStatus
from tests.grpc_clients.servers import GrpcTestServer


@pytest.fixture
async def not_serving() -> AsyncIterator[GrpcTestServer]:
    server = GrpcTestServer(serving=health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_check_all_services(
    grpc_server: GrpcTestServer, not_serving: GrpcTestServer, unused_port: int
) -> None:
    checker = HealthChecker(
        {
            "embedding": grpc_server.target,
            "reranking": not_serving.target,
            "docling-vlm": f"127.0.0.1:{unused_port}",
        }
    )

    statuses = await checker.check_all_services()

    assert {name: s.status for name, s in statuses.items()} == {
        "embedding": "healthy",
        "reranking": "unhealthy",
        "docling-vlm": "unhealthy",
    }
    healthy, down, dead = statuses["embedding"], statuses["reranking"], statuses["docling-vlm"]
    assert healthy.error is None
    assert healthy.details == {"grpc_status": "SERVING", "service_url": grpc_server.target}
    assert down.error is None
    assert down.details["grpc_status"] == "NOT_SERVING"
    assert dead.error
    assert dead.details["grpc_code"] == "UNAVAILABLE"
    assert dead.details["error_type"] == "ServiceUnavailableError"
    for status in statuses.values():
        assert status.timestamp.tzinfo is UTC
        assert status.response_time_ms >= 0

    assert sorted(checker.get_unhealthy_services()) == ["docling-vlm", "reranking"]
    assert checker.is_service_healthy("embedding")
    assert not checker.is_service_healthy("reranking")
    assert not checker.is_service_healthy("never-configured")
    assert checker.get_service_health("embedding") is healthy
    assert checker.get_service_health("never-configured") is None


async def test_one_failing_check_never_fails_the_others(
    grpc_server: GrpcTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker = HealthChecker({"good": grpc_server.target, "broken": grpc_server.target})
    real = checker._check_service_health

    async def explode_for_broken(name: str, url: str) -> HealthStatus:
        if name == "broken":
            raise RuntimeError("checker bug")
        return await real(name, url)

    monkeypatch.setattr(checker, "_check_service_health", explode_for_broken)
    statuses = await checker.check_all_services()
    assert statuses["good"].status == "healthy"
    assert statuses["broken"].status == "unhealthy"
    assert statuses["broken"].error == "checker bug"


async def test_check_service_updates_one_entry(grpc_server: GrpcTestServer) -> None:
    checker = HealthChecker({"embedding": grpc_server.target})
    assert checker.get_unhealthy_services() == []
    status = await checker.check_service("embedding")
    assert status.healthy
    assert checker.health_status == {"embedding": status}
    with pytest.raises(KeyError):
        await checker.check_service("unknown")


async def test_a_named_health_service_can_be_asked_about(grpc_server: GrpcTestServer) -> None:
    await grpc_server.health.set("embedding", health_pb2.HealthCheckResponse.NOT_SERVING)
    checker = HealthChecker({"e": grpc_server.target}, health_service="embedding")
    statuses = await checker.check_all_services()
    assert statuses["e"].details["grpc_status"] == "NOT_SERVING"

    missing = HealthChecker({"e": grpc_server.target}, health_service="nope")
    statuses = await missing.check_all_services()
    assert statuses["e"].details["grpc_code"] == "NOT_FOUND"


def test_health_status_to_dict_is_json_ready() -> None:
    from datetime import datetime

    status = HealthStatus("svc", "healthy", datetime(2025, 1, 1, tzinfo=UTC), 1.5, {"a": 1})
    assert status.to_dict() == {
        "service_name": "svc",
        "status": "healthy",
        "timestamp": "2025-01-01T00:00:00+00:00",
        "response_time_ms": 1.5,
        "details": {"a": 1},
        "error": None,
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ({"a": "x:1"}, {"timeout": 0}, "timeout"),
        ({"a": "x:1"}, {"tls_ca_path": "/ca.pem"}, "use_tls"),
        ({"": "x:1"}, {}, "service names"),
        ({"a": ""}, {}, "services"),
    ],
)
def test_bad_arguments(args: dict[str, str], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HealthChecker(args, **kwargs)  # type: ignore[arg-type]
