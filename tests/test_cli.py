"""The ``servicegrid`` CLI against real servers: grpc.aio health, uvicorn HTTP, closed ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from typer.testing import CliRunner

import servicegrid.cli._app as cli_app
from servicegrid.cli import app
from servicegrid.cli._monitor import Monitor, ServiceReport
from servicegrid.cli.probes import ProbeResult, ServiceTarget, probe
from servicegrid.settings import Settings, http_service_name, load_settings

SEED_001_KEYS = {"service", "state", "failure_count", "last_failure", "last_state_change"}
REPORT_KEYS = SEED_001_KEYS | {"kind", "url", "health", "response_time_ms", "error"}
GRPC_VARS = {
    "gpu": "GPU_SERVICE_URL",
    "embedding": "EMBEDDING_SERVICE_URL",
    "reranking": "RERANKING_SERVICE_URL",
    "documents": "DOCLING_VLM_SERVICE_URL",
}


# -- environment and ports -----------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sees only the variables a test sets."""
    known = {"HTTP_SERVICES", "API_GATEWAY_URL"}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        known.add(alias.upper() if isinstance(alias, str) else field_name.upper())
    for name in list(os.environ):
        if name.upper() in known or http_service_name(name):
            monkeypatch.delenv(name)


@pytest.fixture
def closed_ports() -> Iterator[list[int]]:
    """Ten loopback ports held bound but not listening: connecting to them is refused."""
    sockets = []
    for _ in range(10):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    try:
        yield [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def nothing_listening(monkeypatch: pytest.MonkeyPatch, closed_ports: list[int]) -> list[int]:
    """Point every gRPC service, the integration service, the gateway and seed 002's services
    at a closed port.

    Port 4 is left for an HTTP service of the test's own.
    """
    for var, port in zip(GRPC_VARS.values(), closed_ports, strict=False):
        monkeypatch.setenv(var, f"127.0.0.1:{port}")
    monkeypatch.setenv("INTEGRATION_SERVICE_URL", f"http://127.0.0.1:{closed_ports[5]}/api")
    monkeypatch.setenv("GATEWAY_URL", f"http://127.0.0.1:{closed_ports[6]}")
    for var, port in zip(
        ("USER_SERVICE_URL", "QUESTION_SERVICE_URL", "API_GATEWAY_URL"),
        closed_ports[7:],
        strict=True,
    ):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    return closed_ports


# -- a real grpc.aio server with the standard health service -------------------


@dataclass
class HealthServer:
    port: int
    servicer: Any
    loop: asyncio.AbstractEventLoop

    def set(self, status: int) -> None:
        asyncio.run_coroutine_threadsafe(self.servicer.set("", status), self.loop).result(10)


@pytest.fixture
def grpc_health_server() -> Iterator[HealthServer]:
    """grpc.aio server on 127.0.0.1:0 in its own thread and loop, health set to SERVING."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[Any, Any, int]:
        server = grpc.aio.server()
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        return server, servicer, port

    server, servicer, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield HealthServer(port, servicer, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


# -- a real uvicorn HTTP server -------------------------------------------------


def _http_app() -> FastAPI:
    api = FastAPI()

    @api.get("/health")
    def healthy() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/down/health")
    def down() -> JSONResponse:
        return JSONResponse({"status": "down"}, status_code=503)

    return api


@pytest.fixture
def http_server() -> Iterator[str]:
    """uvicorn in a background thread on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_http_app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


# -- helpers --------------------------------------------------------------------


def _status_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["status", "--json", "--timeout", "5", *args])
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


# -- status -------------------------------------------------------------------------


def test_status_json_reports_unreachable_services_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, nothing_listening: list[int]
) -> None:
    monkeypatch.setenv("CHROMA_SERVER_URL", f"http://127.0.0.1:{nothing_listening[4]}")
    body = _status_json()
    assert list(body) == [
        "gpu",
        "embedding",
        "reranking",
        "documents",
        "integration",
        "gateway",
        "users",
        "questions",
        "api-gateway",
        "chroma",
    ]
    for name, entry in body.items():
        assert set(entry) == REPORT_KEYS
        assert entry["service"] == name
        assert entry["health"] == "unhealthy"
        assert entry["error"]
        assert entry["state"] == "closed"
        assert entry["failure_count"] == 1
        assert entry["last_failure"] is not None
    assert {body[n]["kind"] for n in GRPC_VARS} == {"grpc"}
    assert body["chroma"]["kind"] == "http"
    assert body["integration"]["kind"] == "http"
    assert body["embedding"]["url"] == f"127.0.0.1:{nothing_listening[1]}"
    assert body["chroma"]["error"].startswith("ConnectError")


def test_status_grpc_service_serving_is_healthy(
    monkeypatch: pytest.MonkeyPatch,
    nothing_listening: list[int],
    grpc_health_server: HealthServer,
) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", f"127.0.0.1:{grpc_health_server.port}")
    body = _status_json()
    embedding = body["embedding"]
    assert embedding["health"] == "healthy"
    assert embedding["error"] is None
    assert embedding["response_time_ms"] >= 0
    assert (embedding["state"], embedding["failure_count"], embedding["last_failure"]) == (
        "closed",
        0,
        None,
    )
    assert body["reranking"]["health"] == "unhealthy"


def test_status_grpc_service_not_serving_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch,
    nothing_listening: list[int],
    grpc_health_server: HealthServer,
) -> None:
    grpc_health_server.set(health_pb2.HealthCheckResponse.NOT_SERVING)
    monkeypatch.setenv("GPU_SERVICE_URL", f"127.0.0.1:{grpc_health_server.port}")
    gpu = _status_json()["gpu"]
    assert gpu["health"] == "unhealthy"
    assert "NOT_SERVING" in gpu["error"]


def test_status_http_service_via_chroma_server_url(
    monkeypatch: pytest.MonkeyPatch, nothing_listening: list[int], http_server: str
) -> None:
    monkeypatch.setenv("CHROMA_SERVER_URL", http_server)
    monkeypatch.setenv("USER_SERVICE_URL", f"{http_server}/down/")
    body = _status_json()
    chroma = body["chroma"]
    assert (chroma["kind"], chroma["url"], chroma["health"]) == ("http", http_server, "healthy")
    assert chroma["error"] is None
    user = body["users"]
    assert user["health"] == "unhealthy"
    assert "503" in user["error"]


def test_status_table(monkeypatch: pytest.MonkeyPatch, nothing_listening: list[int]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    for heading in ("service", "kind", "URL", "circuit", "failures", "last failure", "health"):
        assert heading in result.stdout
    for name in GRPC_VARS:
        assert name in result.stdout
    assert "unhealthy" in result.stdout


def test_bad_configuration_exits_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_TIMEOUT", "-3")
    monkeypatch.setenv("CHROMA_SERVER_URL", "ftp://chroma")
    for command in (["status"], ["status", "--json"], ["up", "--once", "--no-services"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2
        assert "EMBEDDING_SERVICE_TIMEOUT: Input should be greater than 0" in result.stderr
        assert "CHROMA_SERVER_URL" in result.stderr
        assert result.stdout == ""


def test_non_positive_timeout_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["status", "--timeout", "0"])
    assert result.exit_code == 2


# -- up ---------------------------------------------------------------------------


def test_up_once_prints_one_table_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, nothing_listening: list[int]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["up", "--once", "--no-services"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Monitoring 9 services: gpu")
    assert result.stdout.count("servicegrid services") == 1


def test_up_stops_cleanly_on_sigterm(
    monkeypatch: pytest.MonkeyPatch, nothing_listening: list[int]
) -> None:
    rounds: list[int] = []

    class SignalledMonitor(Monitor):
        async def check(self) -> list[ServiceReport]:
            reports = await super().check()
            rounds.append(len(reports))
            if len(rounds) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return reports

    monkeypatch.setattr(cli_app, "Monitor", SignalledMonitor)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(app, ["up", "--no-services", "--interval", "0.01"])
    assert result.exit_code == 0, result.output
    assert rounds == [9, 9]
    assert "Stopped." in result.stdout
    assert signal.getsignal(signal.SIGTERM) == before


def test_breakers_persist_across_rounds(nothing_listening: list[int]) -> None:
    monitor = Monitor(load_settings(circuit_breaker_threshold=2), timeout=5.0)

    async def three_rounds() -> list[list[ServiceReport]]:
        return [await monitor.check() for _ in range(3)]

    first, second, third = asyncio.run(three_rounds())
    gpu = [rounds[0].to_json() for rounds in (first, second, third)]
    assert [g["state"] for g in gpu] == ["closed", "open", "open"]
    assert [g["failure_count"] for g in gpu] == [1, 2, 2]
    assert [g["health"] for g in gpu] == ["unhealthy", "unhealthy", "unknown"]
    assert "circuit breaker is open" in gpu[2]["error"]
    assert gpu[2]["response_time_ms"] is None


def test_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("servicegrid ")


# -- probes on their own --------------------------------------------------------


def test_probe_without_breaker(grpc_health_server: HealthServer) -> None:
    target = ServiceTarget("embedding", "grpc", f"127.0.0.1:{grpc_health_server.port}")
    result = asyncio.run(probe(target, None, time_limit=5.0))
    assert isinstance(result, ProbeResult)
    assert (result.healthy, result.health, result.error) == (True, "healthy", None)


def test_status_finds_a_discovered_service_through_discovery(
    monkeypatch: pytest.MonkeyPatch,
    nothing_listening: list[int],
    grpc_health_server: HealthServer,
) -> None:
    from tests.support.consul_standin import ConsulStandIn

    with ConsulStandIn() as consul:
        consul.add_entry("embedding-service", port=grpc_health_server.port)
        monkeypatch.setenv("CONSUL_HOST", "127.0.0.1")
        monkeypatch.setenv("CONSUL_PORT", str(consul.port))
        monkeypatch.setenv("EMBEDDING_SERVICE_URL", "discovery:///embedding-service")
        embedding = _status_json()["embedding"]
    assert embedding["url"] == "discovery:///embedding-service"
    assert embedding["health"] == "healthy"


def test_serve_refuses_a_grpc_port_for_a_service_with_one_port() -> None:
    result = CliRunner().invoke(app, ["serve", "gateway", "--grpc-port", "50070"])
    assert result.exit_code == 2
    assert "gateway serves one port only" in result.output
