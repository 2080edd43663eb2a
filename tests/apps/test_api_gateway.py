"""The API gateway service: REST in-process, upstreams and gRPC on real loopback servers."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from servicegrid.apps.api_gateway.deps import GatewayDeps
from servicegrid.apps.api_gateway.keys import KeyTable, rule_allows
from servicegrid.apps.api_gateway.proxy import end_to_end
from servicegrid.apps.api_gateway.rest import create_app
from servicegrid.apps.api_gateway.servicer import json_of_value, registration
from servicegrid.discovery import Discovery, StaticBackend
from servicegrid.errors import ValidationError
from servicegrid.proto import api_gateway_pb2, api_gateway_pb2_grpc
from servicegrid.runtime import RunningServer, create_server
from servicegrid.settings import ApiKeyGrant, Settings, load_settings
from servicegrid.testing import FakeClock
from tests.support.threaded_server import ThreadedServer, free_port

KEYS = {
    "key-alice": ApiKeyGrant(principal="alice", allow=("questions:read", "users:*")),
    "key-admin": ApiKeyGrant(principal="admin", allow=("*",)),
    "key-reader": ApiKeyGrant(principal="reader", allow=("*:read",)),
}

SLOW_SECONDS = 1.0  # the slow route's delay, well past the short proxy timeout of its test


# ---- the upstream: echoes what it got, or answers a given status ---------------------------


class Echo:
    """A Starlette app that echoes each request as JSON; ``/status/<n>`` answers status n."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def echo(self, request: Request) -> Response:
        with self._lock:
            self.hits[request.url.path] += 1
        body = await request.body()
        answer = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers.items()),
            "body": body.decode(),
        }
        headers = {"x-echo": "yes", "set-cookie": "a=1", "keep-alive": "timeout=5"}
        return JSONResponse(answer, headers=headers)

    async def status(self, request: Request) -> Response:
        code = int(request.path_params["code"])
        with self._lock:
            self.hits[request.url.path] += 1
        return JSONResponse({"upstream_status": code}, status_code=code)

    async def slow(self, request: Request) -> Response:
        await asyncio.sleep(SLOW_SECONDS)
        return JSONResponse({"slow": True})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
        return Starlette(
            routes=[
                Route("/health", self.health),
                Route("/status/{code:int}", self.status, methods=methods),
                Route("/slow", self.slow),
                Route("/{rest:path}", self.echo, methods=methods),
            ]
        )


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[Echo, str]]:
    upstream = Echo()
    with ThreadedServer(upstream.app(), name="echo upstream") as server:
        yield upstream, server.url


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_gateway_keys": KEYS,
        "api_gateway_rate_limit_rps": 1.0,
        "api_gateway_rate_limit_burst": 3,
        "api_gateway_proxy_timeout": 10.0,
        "status_timeout": 2.0,
    }
    return load_settings(**(values | overrides))


@dataclass
class Gateway:
    deps: GatewayDeps
    client: httpx.AsyncClient
    clock: FakeClock
    upstream: Echo
    dead_url: str
    backend: StaticBackend


async def _gateway(echo: tuple[Echo, str], settings: Settings) -> AsyncIterator[Gateway]:
    upstream, url = echo
    clock = FakeClock()
    dead_url = f"http://127.0.0.1:{free_port()}"
    backend = StaticBackend(
        {"echo-service": [url], "dead-service": [dead_url], "api-gateway": [url]}
    )
    deps = GatewayDeps.from_settings(settings, discovery=Discovery([backend]), clock=clock)
    app = create_app(settings, deps=deps, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        try:
            yield Gateway(deps, client, clock, upstream, dead_url, backend)
        finally:
            await deps.aclose()


@pytest.fixture
async def gw(echo: tuple[Echo, str]) -> AsyncIterator[Gateway]:
    async for gateway in _gateway(echo, _settings()):
        yield gateway


def _fields(response: httpx.Response) -> list[str]:
    """The fields a 422 names: FastAPI's ``detail[].loc`` or our ``validation_errors``."""
    body = response.json()
    if isinstance(body.get("detail"), list):
        return [str(error["loc"][-1]) for error in body["detail"]]
    return [error["field"] for error in body.get("validation_errors", [])]


# ---- proxy ---------------------------------------------------------------------------------


async def test_proxy_forwards_method_path_query_headers_and_body(gw: Gateway) -> None:
    response = await gw.client.post(
        "/proxy",
        json={
            "service": "echo-service",
            "method": "put",
            "path": "/items/7?x=1&y=two",
            "headers": {"X-Trace": "abc", "Keep-Alive": "5", "Proxy-Authorization": "no"},
            "body": {"a": 1, "b": [True, None, "é"]},
        },
    )
    assert response.status_code == 200
    assert response.headers["x-upstream-service"] == "echo-service"
    assert response.headers["x-echo"] == "yes"
    assert response.headers["set-cookie"] == "a=1"
    assert "keep-alive" not in response.headers
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["path"] == "/items/7"
    assert seen["query"] == "x=1&y=two"
    assert seen["headers"]["x-trace"] == "abc"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["via"] == "1.1 api-gateway"
    assert "keep-alive" not in seen["headers"]
    assert "proxy-authorization" not in seen["headers"]
    assert httpx.Response(200, content=seen["body"]).json() == {"a": 1, "b": [True, None, "é"]}


async def test_proxy_defaults_to_get_of_the_root_without_body(gw: Gateway) -> None:
    response = await gw.client.post("/proxy", json={"service": "echo-service"})
    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/", "")


async def test_proxy_passes_upstream_4xx_and_5xx_through_unretried(gw: Gateway) -> None:
    for code in (404, 500):
        before = gw.upstream.hits[f"/status/{code}"]
        response = await gw.client.post(
            "/proxy", json={"service": "echo-service", "path": f"/status/{code}"}
        )
        assert response.status_code == code
        assert response.json() == {"upstream_status": code}
        assert response.headers["x-upstream-service"] == "echo-service"
        assert gw.upstream.hits[f"/status/{code}"] == before + 1


@pytest.mark.parametrize(
    "service",
    ["http://x", "http://127.0.0.1:8001", "a/b", "echo.service", "host:80", "Echo", "", "-a"],
)
async def test_proxy_refuses_anything_but_a_discovery_name(gw: Gateway, service: str) -> None:
    response = await gw.client.post("/proxy", json={"service": service})
    assert response.status_code == 422
    assert "service" in _fields(response)


@pytest.mark.parametrize(
    ("service", "words"),
    [("nope-service", "not known"), ("api-gateway", "itself")],
)
async def test_proxy_refuses_unknown_services_and_itself(
    gw: Gateway, service: str, words: str
) -> None:
    response = await gw.client.post("/proxy", json={"service": service})
    assert response.status_code == 422
    assert _fields(response) == ["service"]
    assert response.json()["detail"].startswith("service: ")
    assert words in response.json()["detail"]


async def test_proxy_refuses_a_request_that_came_through_the_gateway(gw: Gateway) -> None:
    response = await gw.client.post(
        "/proxy", json={"service": "echo-service"}, headers={"Via": "1.0 edge, 1.1 api-gateway"}
    )
    assert response.status_code == 422
    assert "loop" in response.json()["detail"]
    passed = await gw.client.post(
        "/proxy", json={"service": "echo-service"}, headers={"Via": "1.1 edge"}
    )
    assert passed.status_code == 200


async def test_proxy_keeps_to_the_configured_services(echo: tuple[Echo, str]) -> None:
    settings = _settings(api_gateway_proxy_services=("dead-service",))
    async for gateway in _gateway(echo, settings):
        response = await gateway.client.post("/proxy", json={"service": "echo-service"})
        assert response.status_code == 422
        assert _fields(response) == ["service"]


@pytest.mark.parametrize(
    "path",
    [
        "items",
        "/a/../b",
        "/a/%2E%2E/b",
        "/go?to=http://evil.example",
        "/a b",
        "/a\tb",
        "/a\x00b",
        "/é",
        "/" + "a" * 2048,
    ],
)
async def test_proxy_refuses_bad_paths(gw: Gateway, path: str) -> None:
    response = await gw.client.post("/proxy", json={"service": "echo-service", "path": path})
    assert response.status_code == 422
    assert "path" in _fields(response)


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"bad name": "x"}, "headers"),
        ({"x-ok": "line\r\nbreak"}, "headers"),
        ({f"x-h{i}": "v" for i in range(51)}, "headers"),
        ({}, None),
    ],
)
async def test_proxy_checks_headers(
    gw: Gateway, headers: dict[str, str], field: str | None
) -> None:
    response = await gw.client.post("/proxy", json={"service": "echo-service", "headers": headers})
    if field is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 422
        assert field in _fields(response)


async def test_proxy_refuses_an_unknown_method(gw: Gateway) -> None:
    response = await gw.client.post("/proxy", json={"service": "echo-service", "method": "TRACE"})
    assert response.status_code == 422
    assert "method" in _fields(response)


async def test_an_unreachable_upstream_is_an_unavailable_error_not_a_500(gw: Gateway) -> None:
    for method in ("GET", "POST", "GET", "GET"):
        response = await gw.client.post(
            "/proxy", json={"service": "dead-service", "method": method, "body": {"x": 1}}
        )
        assert response.status_code in (502, 503)
        body = response.json()
        assert body["error"] in ("ConnectError", "ServiceUnavailable")
        assert body["detail"]
    # its breaker ejected the dead instance: later calls fail at once, still typed
    assert gw.deps.forwarder.upstreams()["dead-service"][0]["ejected"] is True


async def test_a_slow_upstream_is_a_deadline_error(echo: tuple[Echo, str]) -> None:
    async for gateway in _gateway(echo, _settings(api_gateway_proxy_timeout=0.2)):
        response = await gateway.client.post(
            "/proxy", json={"service": "echo-service", "path": "/slow"}
        )
        assert response.status_code == 504
        assert response.json()["error"] in ("DeadlineExceeded", "ReadTimeout")


async def test_head_brings_back_no_body(gw: Gateway) -> None:
    response = await gw.client.post(
        "/proxy", json={"service": "echo-service", "method": "HEAD", "path": "/anything"}
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-upstream-service"] == "echo-service"


def test_end_to_end_drops_hop_by_hop_and_connection_named_headers() -> None:
    headers = [
        ("Connection", "close, X-Private"),
        ("X-Private", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Proxy-Connection", "keep-alive"),
        ("Host", "evil"),
        ("Content-Length", "3"),
        ("TE", "trailers"),
        ("X-Kept", "yes"),
    ]
    assert end_to_end(headers) == [("X-Kept", "yes")]


# ---- validate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "resource", "action", "allowed", "principal", "reason"),
    [
        ("key-alice", "questions", "read", True, "alice", "allowed by rule questions:read"),
        ("key-alice", "users", "delete", True, "alice", "allowed by rule users:*"),
        ("key-alice", "questions", "write", False, "alice", "alice may not write on questions"),
        ("key-admin", "anything/at.all", "drop", True, "admin", "allowed by rule *"),
        ("key-reader", "users", "read", True, "reader", "allowed by rule *:read"),
        ("key-reader", "users", "write", False, "reader", "reader may not write on users"),
        ("key-bogus", "users", "read", False, "", "unknown API key"),
    ],
)
async def test_validate(
    gw: Gateway,
    key: str,
    resource: str,
    action: str,
    allowed: bool,
    principal: str,
    reason: str,
) -> None:
    response = await gw.client.post(
        "/validate", json={"api_key": key, "resource": resource, "action": action}
    )
    assert response.status_code == 200
    assert response.json() == {"allowed": allowed, "principal": principal, "reason": reason}


async def test_validate_without_configured_keys_allows_nothing(echo: tuple[Echo, str]) -> None:
    async for gateway in _gateway(echo, _settings(api_gateway_keys={})):
        response = await gateway.client.post(
            "/validate", json={"api_key": "anything", "resource": "users", "action": "read"}
        )
        assert response.json() == {
            "allowed": False,
            "principal": "",
            "reason": "no API keys are configured (API_GATEWAY_KEYS)",
        }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"api_key": "", "resource": "users", "action": "read"}, "api_key"),
        ({"api_key": "k" * 513, "resource": "users", "action": "read"}, "api_key"),
        ({"api_key": "k", "resource": "users:all", "action": "read"}, "resource"),
        ({"api_key": "k", "resource": "users", "action": "re/ad"}, "action"),
    ],
)
async def test_validate_checks_its_fields(gw: Gateway, body: dict[str, str], field: str) -> None:
    response = await gw.client.post("/validate", json=body)
    assert response.status_code == 422
    assert field in _fields(response)


def test_rules_and_the_key_table() -> None:
    assert rule_allows("*", "x", "y")
    assert rule_allows("x:*", "x", "y")
    assert not rule_allows("x:*", "z", "y")
    assert rule_allows("*:y", "x", "y")
    assert not rule_allows("*:y", "x", "z")
    assert not rule_allows("x", "x", "y")
    table = KeyTable(KEYS)
    assert len(table) == 3
    assert table.check("key-admin", "r", "a").allowed
    assert "key-admin" not in repr(vars(table))  # only digests are kept


# ---- rate limits ---------------------------------------------------------------------------


async def _check(gw: Gateway, client_id: str, resource: str | None = None) -> dict[str, Any]:
    body = {"client_id": client_id} | ({} if resource is None else {"resource": resource})
    response = await gw.client.post("/rate-limit/check", json=body)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


async def test_rate_limit_allows_a_burst_then_refuses(gw: Gateway) -> None:
    answers = [await _check(gw, "client-a") for _ in range(3)]
    assert [a["allowed"] for a in answers] == [True, True, True]
    assert [a["remaining"] for a in answers] == [2, 1, 0]
    assert all(a["retry_after_seconds"] == 0 for a in answers)
    assert answers[-1]["reset_after_seconds"] == pytest.approx(3.0)
    refused = await _check(gw, "client-a")
    assert refused["allowed"] is False
    assert refused["remaining"] == 0
    assert refused["retry_after_seconds"] == pytest.approx(1.0)


async def test_rate_limit_refills_with_time(gw: Gateway) -> None:
    for _ in range(3):
        await _check(gw, "client-b")
    assert (await _check(gw, "client-b"))["allowed"] is False
    gw.clock.advance(1.0)
    again = await _check(gw, "client-b")
    assert again["allowed"] is True
    assert again["remaining"] == 0
    gw.clock.advance(10.0)
    full = await _check(gw, "client-b")
    assert full["remaining"] == 2
    assert full["reset_after_seconds"] == pytest.approx(1.0)


async def test_rate_limits_are_per_client_and_resource(gw: Gateway) -> None:
    for _ in range(3):
        await _check(gw, "client-c")
    assert (await _check(gw, "client-c"))["allowed"] is False
    assert (await _check(gw, "client-d"))["allowed"] is True
    assert (await _check(gw, "client-c", "questions"))["allowed"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client_id": ""}, "client_id"),
        ({"client_id": "x" * 257}, "client_id"),
        ({"client_id": "a\x01b"}, "client_id"),
        ({"client_id": "a", "resource": "no spaces"}, "resource"),
    ],
)
async def test_rate_limit_checks_its_fields(gw: Gateway, body: dict[str, str], field: str) -> None:
    response = await gw.client.post("/rate-limit/check", json=body)
    assert response.status_code == 422
    assert field in _fields(response)


# ---- health --------------------------------------------------------------------------------


async def test_health_of_a_live_service(gw: Gateway) -> None:
    response = await gw.client.get("/health/echo-service")
    assert response.status_code == 200
    body = response.json()
    assert body["service"] == "echo-service"
    assert body["status"] == "healthy"
    assert body["backend"] == "static"
    [instance] = body["instances"]
    assert instance["status"] == "healthy"
    assert instance["error"] == ""
    assert instance["address"].startswith("127.0.0.1:")
    assert instance["response_time_ms"] >= 0


async def test_health_of_a_dead_service(gw: Gateway) -> None:
    response = await gw.client.get("/health/dead-service")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "unhealthy"
    [instance] = body["instances"]
    assert instance["status"] == "unhealthy"
    assert instance["error"]
    assert instance["address"] == gw.dead_url.removeprefix("http://")


async def test_health_of_an_unknown_or_misnamed_service(gw: Gateway) -> None:
    unknown = await gw.client.get("/health/nope-service")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "ResourceNotFoundError"
    for bad in ("Not.A.Name", "a/b", "http:%2F%2Fx"):
        misnamed = await gw.client.get(f"/health/{bad}")
        assert misnamed.status_code == 422
        assert _fields(misnamed) == ["service_name"]


async def test_own_health(gw: Gateway) -> None:
    response = await gw.client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert response.json()["service"] == "api-gateway"


def test_the_lifespan_builds_and_closes_its_own_deps() -> None:
    app = create_app(_settings())
    with TestClient(app) as client:
        assert app.state.deps is not None
        assert client.get("/health").status_code == 200
        response = client.post("/rate-limit/check", json={"client_id": "one"})
        assert response.json()["allowed"] is True


# ---- gRPC ----------------------------------------------------------------------------------


@dataclass
class GrpcGateway:
    gateway: Gateway
    running: RunningServer
    stub: Any


@pytest.fixture
async def rpc(gw: Gateway) -> AsyncIterator[GrpcGateway]:
    running = await create_server(
        "127.0.0.1:0", services=[registration(gw.deps)], registry=CollectorRegistry()
    )
    await running.server.start()
    await running.health.set_all(True)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield GrpcGateway(gw, running, api_gateway_pb2_grpc.APIGatewayServiceStub(channel))
    finally:
        await channel.close()
        await running.server.stop(None)


async def _invalid(call: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}: ")


async def test_grpc_proxy(rpc: GrpcGateway) -> None:
    body = struct_pb2.Value()
    body.struct_value.update({"n": 3, "text": "hi"})
    reply = await rpc.stub.Proxy(
        api_gateway_pb2.ProxyRequest(
            service="echo-service",
            method="POST",
            path="/things?q=1",
            headers={"X-Trace": "t-1"},
            body=body,
        )
    )
    assert reply.status_code == 200
    assert reply.headers["x-echo"] == "yes"
    assert "keep-alive" not in reply.headers
    seen = httpx.Response(200, content=reply.body).json()
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/things", "q=1")
    assert seen["headers"]["x-trace"] == "t-1"
    assert httpx.Response(200, content=seen["body"]).json() == {"n": 3, "text": "hi"}

    plain = await rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="echo-service"))
    seen = httpx.Response(200, content=plain.body).json()
    assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/", "")

    missing = await rpc.stub.Proxy(
        api_gateway_pb2.ProxyRequest(service="echo-service", path="/status/404")
    )
    assert missing.status_code == 404


async def test_grpc_proxy_refuses_bad_input(rpc: GrpcGateway) -> None:
    await _invalid(rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="http://x")), "service")
    await _invalid(rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="api-gateway")), "service")
    await _invalid(rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="nope")), "service")
    await _invalid(
        rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="echo-service", path="/a/../b")),
        "path",
    )
    await _invalid(
        rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="echo-service", method="TRACE")),
        "method",
    )


async def test_grpc_proxy_to_a_dead_service_is_unavailable(rpc: GrpcGateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.stub.Proxy(api_gateway_pb2.ProxyRequest(service="dead-service"))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_grpc_validate(rpc: GrpcGateway) -> None:
    reply = await rpc.stub.Validate(
        api_gateway_pb2.ValidateRequest(api_key="key-alice", resource="questions", action="read")
    )
    assert (reply.allowed, reply.principal) == (True, "alice")
    unknown = await rpc.stub.Validate(
        api_gateway_pb2.ValidateRequest(api_key="nope", resource="questions", action="read")
    )
    assert (unknown.allowed, unknown.principal, unknown.reason) == (False, "", "unknown API key")
    await _invalid(
        rpc.stub.Validate(api_gateway_pb2.ValidateRequest(resource="questions", action="read")),
        "api_key",
    )
    await _invalid(
        rpc.stub.Validate(api_gateway_pb2.ValidateRequest(api_key="k", resource="q", action="")),
        "action",
    )


async def test_grpc_service_health(rpc: GrpcGateway) -> None:
    live = await rpc.stub.GetServiceHealth(
        api_gateway_pb2.ServiceHealthRequest(service_name="echo-service")
    )
    assert (live.service, live.status, live.backend) == ("echo-service", "healthy", "static")
    assert [i.status for i in live.instances] == ["healthy"]
    dead = await rpc.stub.GetServiceHealth(
        api_gateway_pb2.ServiceHealthRequest(service_name="dead-service")
    )
    assert dead.status == "unhealthy"
    assert dead.instances[0].error
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.stub.GetServiceHealth(
            api_gateway_pb2.ServiceHealthRequest(service_name="nope-service")
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    await _invalid(
        rpc.stub.GetServiceHealth(api_gateway_pb2.ServiceHealthRequest(service_name="a/b")),
        "service_name",
    )


async def test_grpc_health_probes_a_grpc_service_by_its_target(rpc: GrpcGateway) -> None:
    # a catalogue gRPC service found at the gateway's own gRPC port, which serves grpc.health
    target = f"127.0.0.1:{rpc.running.port}"
    rpc.gateway.backend.set("embedding-service", [target], "grpc")
    reply = await rpc.stub.GetServiceHealth(
        api_gateway_pb2.ServiceHealthRequest(service_name="embedding-service")
    )
    assert reply.status == "healthy"
    assert reply.instances[0].address == target


async def test_grpc_rate_limit(rpc: GrpcGateway) -> None:
    replies = [
        await rpc.stub.CheckRateLimit(api_gateway_pb2.RateLimitCheckRequest(client_id="g"))
        for _ in range(4)
    ]
    assert [r.allowed for r in replies] == [True, True, True, False]
    assert [r.remaining for r in replies] == [2, 1, 0, 0]
    assert replies[-1].retry_after_seconds > 0
    rpc.gateway.clock.advance(1.0)
    again = await rpc.stub.CheckRateLimit(
        api_gateway_pb2.RateLimitCheckRequest(client_id="g", resource="default")
    )
    assert again.allowed
    await _invalid(
        rpc.stub.CheckRateLimit(api_gateway_pb2.RateLimitCheckRequest(client_id="")), "client_id"
    )
    await _invalid(
        rpc.stub.CheckRateLimit(
            api_gateway_pb2.RateLimitCheckRequest(client_id="a", resource="a b")
        ),
        "resource",
    )


def test_json_of_value() -> None:
    assert json_of_value(struct_pb2.Value()) is None
    value = struct_pb2.Value()
    value.list_value.extend([1, 2.5, "x", None, True])
    assert json_of_value(value) == [1, 2.5, "x", None, True]
    with pytest.raises(ValidationError, match=r"^body: "):
        json_of_value(struct_pb2.Value(number_value=float("nan")))
