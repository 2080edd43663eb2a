"""Operations: liveness, readiness, Prometheus metrics, and seed 001's status endpoint.

``/ready`` says whether this gateway can serve (settings loaded, clients open),
not whether every upstream is up: one dead upstream must not take every replica
out of the load balancer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicegrid.gateway.routes import clients_of, settings_of
from servicegrid.status_routes import STATUS_PATH

__all__ = ["RequestMetrics", "ops_router"]


class RequestMetrics:
    """ASGI middleware counting requests and their latency by route template and status."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "servicegrid_gateway_requests",
            "Requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "servicegrid_gateway_request_seconds",
            "Time to answer a request, by route and method",
            ["route", "method"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route, method).observe(time.perf_counter() - started)


async def _reachability(client: Any, wait: float) -> dict[str, Any]:
    report: dict[str, Any] = await client.health_check(timeout=wait)
    report["reachable"] = report.get("status") == "healthy"
    return report


def ops_router() -> APIRouter:
    """``/health``, ``/ready``, ``/metrics`` and ``/v1/api/status/services``."""
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", summary="Readiness: settings loaded and clients open")
    async def ready(request: Request) -> JSONResponse:
        if getattr(request.app.state, "ready", False):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, 503, headers={"Retry-After": "1"})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        registry: CollectorRegistry = request.app.state.metrics_registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(STATUS_PATH, summary="Breaker status and reachability of every upstream")
    async def service_statuses(request: Request) -> dict[str, Any]:
        clients = clients_of(request)
        settings = settings_of(request)
        services = clients.model_services()
        reports = await asyncio.gather(
            *(_reachability(client, settings.status_timeout) for client in services.values())
        )
        answer: dict[str, Any] = {}
        for (name, client), report in zip(services.items(), reports, strict=True):
            answer[name] = client.get_status() | {
                "service_url": client.service_url,
                "reachable": report["reachable"],
                "health": report,
            }
        if clients.llm is not None:
            answer["llm"] = {
                "service": "llm",
                "hosts": [host.name for host in clients.llm.hosts],
            }
        # every value is one service's status dict, as seed 001's endpoint has them
        answer["gateway"] = {
            "service": "gateway",
            "auth": "keys" if settings.api_keys else "open",
            "ready": bool(getattr(request.app.state, "ready", False)),
        }
        return answer

    return router
