"""Seed 002's API gateway service: proxy to discovered services, API key checks, service
health and per-client rate limits, over REST (:8003) and gRPC (:50063).

.. code-block:: python

    deps = GatewayDeps.from_settings(settings, discovery=Discovery.from_settings(settings))
    app = create_app(settings, deps=deps)                 # REST
    servicer = APIGatewayServicer(deps)                   # gRPC, the same deps
    await deps.aclose()

``servicegrid serve api-gateway`` runs both (:func:`run_api_gateway_service`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicegrid._lazy import lazy_exports

if TYPE_CHECKING:
    from servicegrid.apps.api_gateway.deps import GatewayDeps
    from servicegrid.apps.api_gateway.keys import KeyTable
    from servicegrid.apps.api_gateway.limits import ClientLimits
    from servicegrid.apps.api_gateway.proxy import ProxyAnswer, ProxyForwarder
    from servicegrid.apps.api_gateway.rest import create_app
    from servicegrid.apps.api_gateway.server import run_api_gateway_service
    from servicegrid.apps.api_gateway.servicer import APIGatewayServicer

__all__ = [
    "APIGatewayServicer",
    "ClientLimits",
    "GatewayDeps",
    "KeyTable",
    "ProxyAnswer",
    "ProxyForwarder",
    "create_app",
    "run_api_gateway_service",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "APIGatewayServicer": "servicegrid.apps.api_gateway.servicer",
        "ClientLimits": "servicegrid.apps.api_gateway.limits",
        "GatewayDeps": "servicegrid.apps.api_gateway.deps",
        "KeyTable": "servicegrid.apps.api_gateway.keys",
        "ProxyAnswer": "servicegrid.apps.api_gateway.proxy",
        "ProxyForwarder": "servicegrid.apps.api_gateway.proxy",
        "create_app": "servicegrid.apps.api_gateway.rest",
        "run_api_gateway_service": "servicegrid.apps.api_gateway.server",
    },
)
