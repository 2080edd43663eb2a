"""The API gateway's REST app: proxy, key check, service health, rate-limit check.

.. code-block:: python

    app = create_app(load_settings())          # deps built and closed in the lifespan
    app = create_app(settings, deps=deps)      # deps given: the caller closes them

================================  ==========================================================
``POST /proxy``                   forward to a discovered service; its status, headers, body
``POST /validate``                may this API key do ``action`` on ``resource``?
``GET /health/{service_name}``    every instance of a service probed (404: unknown service)
``POST /rate-limit/check``        count one request of a client (token bucket per client)
``GET /health``                   this service's own health
================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import Response

from servicegrid.apps._http import add_health_route, install_error_handlers
from servicegrid.apps.api_gateway.deps import GatewayDeps
from servicegrid.apps.api_gateway.health import check_service_name
from servicegrid.apps.api_gateway.proxy import has_passed_here
from servicegrid.apps.api_gateway.schemas import (
    ProxyRequest,
    RateLimitAnswer,
    RateLimitCheckRequest,
    ServiceHealthAnswer,
    ValidateAnswer,
    ValidateRequest,
)
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import ValidationError
from servicegrid.settings import Settings

__all__ = ["SERVICE_NAME", "UPSTREAM_HEADER", "create_app"]

SERVICE_NAME: Final = "api-gateway"
UPSTREAM_HEADER: Final = "x-upstream-service"
"""Names the service that answered a ``/proxy`` request."""


def _deps(request: Request) -> GatewayDeps:
    deps: GatewayDeps = request.app.state.deps
    return deps


def create_app(
    settings: Settings, *, deps: GatewayDeps | None = None, clock: Clock = SYSTEM_CLOCK
) -> FastAPI:
    """The gateway's REST app; ``deps`` None: built from ``settings`` in the lifespan (with
    ``Discovery.from_settings``) and closed at its end."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if deps is not None:
            yield
            return
        built = GatewayDeps.from_settings(
            settings, discovery=Discovery.from_settings(settings, clock=clock), clock=clock
        )
        app.state.deps = built
        try:
            yield
        finally:
            await built.aclose()

    app = FastAPI(
        title="servicegrid API gateway",
        summary="Proxy to discovered services, API key checks, service health, rate limits.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.deps = deps
    install_error_handlers(app)

    @app.post("/proxy", tags=["proxy"], summary="Forward a request to a discovered service")
    async def proxy(body: ProxyRequest, request: Request) -> Response:
        if has_passed_here(request.headers.get("via")):
            raise ValidationError.for_field(
                "service", "this request already came through the API gateway: a proxy loop"
            )
        answer = await _deps(request).forwarder.forward(body)
        response = Response(content=answer.body, status_code=answer.status)
        response.raw_headers.extend(
            (lower.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers
            if (lower := name.lower()) != UPSTREAM_HEADER
        )
        response.raw_headers.append((UPSTREAM_HEADER.encode(), answer.service.encode("ascii")))
        return response

    @app.post("/validate", tags=["access"], summary="Whether an API key may do an action")
    async def validate(body: ValidateRequest, request: Request) -> ValidateAnswer:
        return _deps(request).keys.check(body.api_key, body.resource, body.action)

    @app.get(
        "/health/{service_name:path}",  # any text, so that "a/b" is a 422, not a 404
        tags=["operations"],
        summary="Probe every instance of a discovered service",
    )
    async def health_of(service_name: str, request: Request) -> ServiceHealthAnswer:
        return await _deps(request).health(check_service_name(service_name))

    @app.post("/rate-limit/check", tags=["access"], summary="Count one request of a client")
    async def rate_limit_check(body: RateLimitCheckRequest, request: Request) -> RateLimitAnswer:
        return _deps(request).limiter.check(body.client_id, body.resource)

    async def own_health() -> dict[str, Any]:
        current = app.state.deps
        if current is None:
            raise RuntimeError("not started")
        backends = [backend.name for backend in current.discovery.backends]
        return {"discovery_backends": backends, "upstreams": len(current.forwarder.upstreams())}

    add_health_route(app, SERVICE_NAME, own_health)
    return app
