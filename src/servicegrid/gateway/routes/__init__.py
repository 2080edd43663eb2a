"""The gateway's routers (one module per upstream API family) and what their handlers read.

Handlers find the app's parts on ``request.app.state``; these accessors name them once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import Request

from servicegrid.settings import Settings

if TYPE_CHECKING:
    from servicegrid.gateway.clients import GatewayClients
    from servicegrid.gateway.coalescing import EmbeddingCoalescer
    from servicegrid.gateway.models import ModelCatalogue

__all__ = ["catalogue_of", "clients_of", "coalescer_of", "settings_of"]


def clients_of(request: Request) -> GatewayClients:
    """The app's upstream clients."""
    return cast("GatewayClients", request.app.state.clients)


def settings_of(request: Request) -> Settings:
    """The settings the app was made with."""
    return cast(Settings, request.app.state.settings)


def catalogue_of(request: Request) -> ModelCatalogue:
    """The app's served-model catalogue."""
    return cast("ModelCatalogue", request.app.state.models)


def coalescer_of(request: Request) -> EmbeddingCoalescer:
    """The app's embedding calls, joined per loop turn into one RPC."""
    return cast("EmbeddingCoalescer", request.app.state.embedder)
