"""``servicegrid serve api-gateway``: the REST app and the gRPC servicer over one set of deps."""

from __future__ import annotations

from servicegrid.apps._serving import serve_rest_and_grpc
from servicegrid.apps.api_gateway.deps import GatewayDeps
from servicegrid.apps.api_gateway.rest import SERVICE_NAME, create_app
from servicegrid.apps.api_gateway.servicer import registration
from servicegrid.discovery.resolver import Discovery
from servicegrid.settings import Settings

__all__ = ["run_api_gateway_service"]


async def run_api_gateway_service(
    settings: Settings, *, host: str, port: int, grpc_port: int
) -> None:
    """Serve the API gateway on ``host:port`` (REST) and ``host:grpc_port`` (gRPC) until
    SIGTERM, then close its transports and discovery."""
    deps = GatewayDeps.from_settings(settings, discovery=Discovery.from_settings(settings))
    try:
        await serve_rest_and_grpc(
            settings,
            SERVICE_NAME,
            create_app(settings, deps=deps),
            [registration(deps)],
            host=host,
            port=port,
            grpc_port=grpc_port,
        )
    finally:
        await deps.aclose()
