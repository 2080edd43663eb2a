"""A stand-in for a Consul agent: a small local server of the few agent HTTP API endpoints
servicegrid uses, with Consul's documented request and answer shapes. It is not Consul.

* ``PUT /v1/agent/service/register``: stores the service; its TTL check (``CheckID``,
  default ``service:<ID>``) starts ``critical``, as Consul's does until the first pass.
* ``PUT /v1/agent/check/pass/<check id>``: passes a TTL check until its TTL runs out
  (then it turns ``critical``); 404 for an unknown check.
* ``PUT /v1/agent/service/deregister/<service id>``: removes it; 404 for an unknown one.
* ``GET /v1/health/service/<name>[?passing]``: Consul's entries (``Node``, ``Service``,
  ``Checks``), only those whose every check passes when ``passing`` is set. A service
  critical for longer than its ``DeregisterCriticalServiceAfter`` is removed, as Consul does.

With ``token`` set, a request without it as ``X-Consul-Token`` (or ``?token=``) gets 403.
FastAPI on a real uvicorn server in a background thread, on a free loopback port:

    with ConsulStandIn() as consul:
        consul.add_entry("user-service", port=8001, address="", node_address="10.0.0.7")
        consul.misbehave(Misbehaviour(status=500))     # every endpoint answers 500
        consul.requests[-1].headers["x-consul-token"]
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.support.threaded_server import ThreadedServer

__all__ = ["ConsulStandIn", "Misbehaviour", "RecordedRequest"]

_NODE = "standin-node"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (``10s``, ``1m30s``, ``1500ms``); ValueError for anything else."""
    if not text or _DURATION.sub("", text):
        raise ValueError(f"time: invalid duration {text!r}")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text))


@dataclass(frozen=True)
class Misbehaviour:
    """How every endpoint answers instead: wait ``delay`` s, then ``status`` with ``body``.

    With ``body`` None and ``status`` 200 it answers normally after the delay.
    """

    status: int = 200
    body: bytes | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Check:
    check_id: str
    name: str
    service_id: str
    status: str = "critical"
    output: str = ""
    ttl: float | None = None
    expires: float = 0.0
    deregister_after: float | None = None
    critical_since: float = field(default_factory=time.monotonic)

    def settle(self, now: float) -> None:
        """A TTL check not passed within its TTL turns critical, as Consul's does."""
        if self.ttl is not None and self.status == "passing" and now >= self.expires:
            self.status = "critical"
            self.output = "TTL expired"
            self.critical_since = self.expires


@dataclass
class _Service:
    service_id: str
    name: str
    address: str
    port: int
    tags: list[str]
    meta: dict[str, str]
    node_address: str
    checks: list[_Check]
    index: int


class ConsulStandIn(ThreadedServer):
    """The stand-in agent; ``url`` is its HTTP API base (``http://127.0.0.1:<port>``)."""

    def __init__(self, *, token: str | None = None, node_address: str = "127.0.0.1") -> None:
        self.token = token
        self.node_address = node_address
        self._services: dict[str, _Service] = {}
        self._requests: list[RecordedRequest] = []
        self._misbehaviour = Misbehaviour()
        self._index = itertools.count(10)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        super().__init__(self._app(), name="Consul stand-in server")

    # ---- what tests drive --------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def misbehave(self, misbehaviour: Misbehaviour) -> None:
        with self._lock:
            self._misbehaviour = misbehaviour

    def behave(self) -> None:
        self.misbehave(Misbehaviour())

    def add_entry(
        self,
        name: str,
        *,
        port: int,
        address: str = "127.0.0.1",
        service_id: str | None = None,
        node_address: str | None = None,
        meta: dict[str, str] | None = None,
        tags: list[str] | None = None,
        status: str = "passing",
    ) -> str:
        """Put an instance in the catalogue directly, with one check in ``status``; its ID."""
        with self._lock:
            sid = service_id or f"{name}-{len(self._services) + 1}"
            check = _Check(f"service:{sid}", f"{name} check", sid, status=status)
            self._services[sid] = _Service(
                sid,
                name,
                address,
                port,
                list(tags or []),
                dict(meta or {}),
                self.node_address if node_address is None else node_address,
                [check],
                next(self._index),
            )
            return sid

    def reset(self, *, token: str | None = None) -> None:
        """Back to a fresh agent: no services, no recorded requests, behaving, ``token``."""
        with self._lock:
            self.token = token
            self._services.clear()
            self._requests.clear()
            self._misbehaviour = Misbehaviour()

    def forget_services(self) -> None:
        """Drop every service and check, as an agent restarted without its state would."""
        with self._lock:
            self._services.clear()

    def check_status(self, check_id: str) -> str | None:
        """The status of check ``check_id`` now, or None if the agent does not know it."""
        with self._lock:
            check = self._find_check(check_id)
            if check is None:
                return None
            check.settle(time.monotonic())
            return check.status

    def passes(self, check_id: str) -> int:
        """How many times check ``check_id`` was passed."""
        wanted = f"/v1/agent/check/pass/{check_id}"
        return sum(1 for r in self.requests if r.method == "PUT" and r.path == wanted)

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    # ---- the agent ---------------------------------------------------------------------

    def _find_check(self, check_id: str) -> _Check | None:
        for service in self._services.values():
            for check in service.checks:
                if check.check_id == check_id:
                    return check
        return None

    def _settle(self) -> None:
        now = time.monotonic()
        for sid, service in list(self._services.items()):
            for check in service.checks:
                check.settle(now)
                if (
                    check.status == "critical"
                    and check.deregister_after is not None
                    and now - check.critical_since >= check.deregister_after
                ):
                    del self._services[sid]
                    break

    def _register(self, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("Name"):
            return _text(400, "Missing service name")
        sid = str(body.get("ID") or body["Name"])
        port = body.get("Port", 0)
        if not isinstance(port, int):
            return _text(400, "Request decode failed: Port must be an integer")
        definitions = body.get("Checks") or ([body["Check"]] if body.get("Check") else [])
        checks: list[_Check] = []
        for number, definition in enumerate(definitions, start=1):
            default_id = f"service:{sid}" if len(definitions) == 1 else f"service:{sid}:{number}"
            try:
                ttl = parse_go_duration(definition["TTL"]) if definition.get("TTL") else None
                after = definition.get("DeregisterCriticalServiceAfter")
                deregister_after = parse_go_duration(after) if after else None
            except ValueError as exc:
                return _text(400, f"Invalid check: {exc}")
            checks.append(
                _Check(
                    str(definition.get("CheckID") or default_id),
                    str(definition.get("Name") or f"Service '{body['Name']}' check"),
                    sid,
                    status=str(definition.get("Status") or "critical"),
                    ttl=ttl,
                    deregister_after=deregister_after,
                )
            )
        with self._lock:
            self._services[sid] = _Service(
                sid,
                str(body["Name"]),
                str(body.get("Address") or ""),
                port,
                list(body.get("Tags") or []),
                dict(body.get("Meta") or {}),
                self.node_address,
                checks,
                next(self._index),
            )
        return Response(status_code=200)

    def _pass(self, check_id: str, note: str) -> Response:
        with self._lock:
            check = self._find_check(check_id)
            if check is None:
                return _text(404, f'Unknown check ID "{check_id}"')
            check.status, check.output = "passing", note
            if check.ttl is not None:
                check.expires = time.monotonic() + check.ttl
        return Response(status_code=200)

    def _deregister(self, service_id: str) -> Response:
        with self._lock:
            if self._services.pop(service_id, None) is None:
                return _text(
                    404,
                    f'Unknown service ID "{service_id}". '
                    "Ensure that the service ID is passed, not the service name.",
                )
        return Response(status_code=200)

    def _health(self, name: str, passing: bool) -> JSONResponse:
        with self._lock:
            self._settle()
            entries = [
                _entry(service, self._serf_check())
                for service in self._services.values()
                if service.name == name
                and (not passing or all(c.status == "passing" for c in service.checks))
            ]
            index = max((s.index for s in self._services.values()), default=1)
        headers = {
            "X-Consul-Index": str(index),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
        }
        return JSONResponse(entries, headers=headers)

    def _serf_check(self) -> dict[str, Any]:
        return {
            "Node": _NODE,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "passing",
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
        }

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record_and_misbehave(request: Request, call_next: Any) -> Any:
            raw = await request.body()
            try:
                body: Any = await request.json() if raw else None
            except ValueError:
                body = raw
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        request.method,
                        request.url.path,
                        dict(request.query_params),
                        dict(request.headers),
                        body,
                    )
                )
                misbehaviour = self._misbehaviour
            if misbehaviour.delay:
                # waits on the stop flag, so that shutting down never waits out a long delay
                await asyncio.to_thread(self._stopping.wait, misbehaviour.delay)
            if misbehaviour.body is not None or misbehaviour.status != 200:
                body = b"stand-in failure" if misbehaviour.body is None else misbehaviour.body
                return Response(
                    body,
                    status_code=misbehaviour.status,
                    media_type="application/json",
                )
            token = request.headers.get("x-consul-token") or request.query_params.get("token")
            if self.token is not None and token != self.token:
                return _text(403, "ACL not found" if token else "Permission denied")
            return await call_next(request)

        @app.put("/v1/agent/service/register")
        async def register(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return _text(400, "Request decode failed")
            return self._register(body)

        @app.put("/v1/agent/check/pass/{check_id:path}")
        async def check_pass(check_id: str, note: str = "") -> Response:
            return self._pass(check_id, note)

        @app.put("/v1/agent/service/deregister/{service_id:path}")
        async def deregister(service_id: str) -> Response:
            return self._deregister(service_id)

        @app.get("/v1/health/service/{name}")
        async def health(name: str, request: Request) -> JSONResponse:
            # Consul reads "?passing" (no value) as true, else the value as a boolean
            value = request.query_params.get("passing")
            passing = value is not None and value.lower() in ("", "1", "t", "true")
            return self._health(name, passing)

        return app


def _text(status: int, message: str) -> Response:
    return Response(message, status_code=status, media_type="text/plain")


def _entry(service: _Service, serf: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``/v1/health/service``, in Consul's shape."""
    node = {
        "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
        "Node": _NODE,
        "Address": service.node_address,
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": service.node_address, "wan": service.node_address},
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": 5,
        "ModifyIndex": 5,
    }
    checks = [
        {
            "Node": _NODE,
            "CheckID": check.check_id,
            "Name": check.name,
            "Status": check.status,
            "Notes": "",
            "Output": check.output,
            "ServiceID": service.service_id,
            "ServiceName": service.name,
            "ServiceTags": service.tags,
            "Type": "ttl" if check.ttl is not None else "",
        }
        for check in service.checks
    ]
    return {
        "Node": node,
        "Service": {
            "ID": service.service_id,
            "Service": service.name,
            "Tags": service.tags,
            "Address": service.address,
            "Meta": service.meta,
            "Port": service.port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "CreateIndex": service.index,
            "ModifyIndex": service.index,
        },
        "Checks": [serf, *checks],
    }
