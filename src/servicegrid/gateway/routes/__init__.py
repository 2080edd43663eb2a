"""The gateway's routers (one module per upstream API family) and what their handlers read.

Handlers find the app's parts on ``request.app.state``; these accessors name them once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import Request

from servicegrid.errors import ServiceUnavailableError
from servicegrid.gateway.schemas import check_texts
from servicegrid.settings import Settings

if TYPE_CHECKING:
    from servicegrid.gateway.clients import GatewayClients
    from servicegrid.gateway.coalescing import EmbeddingCoalescer
    from servicegrid.gateway.models import ModelCatalogue
    from servicegrid.retrieval.orchestrator import OrchestratorService
    from servicegrid.retrieval.upstreams import Upstreams

__all__ = [
    "capped_texts",
    "catalogue_of",
    "clients_of",
    "coalescer_of",
    "orchestrator_of",
    "settings_of",
    "upstreams_of",
]


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


def orchestrator_of(request: Request) -> OrchestratorService:
    """The app's retrieval orchestrator; ServiceUnavailableError without the retrieval extra."""
    orchestrator = request.app.state.orchestrator
    if orchestrator is None:
        raise ServiceUnavailableError(
            "the orchestrator needs the retrieval extra: pip install 'servicegrid[retrieval]'"
        )
    return cast("OrchestratorService", orchestrator)


def upstreams_of(request: Request) -> Upstreams:
    """The clients of seed 002's services (and the model services) the app calls."""
    return cast("Upstreams", request.app.state.upstreams)


def capped_texts(request: Request, field: str, value: str | list[str]) -> list[str]:
    """``value`` (one text or a list) as a list within the gateway's caps
    (``SERVICEGRID_MAX_ITEMS`` texts of ``SERVICEGRID_MAX_TEXT_CHARS``); else a
    ValidationError naming ``field``."""
    settings = settings_of(request)
    return check_texts(
        field,
        [value] if isinstance(value, str) else value,
        max_items=settings.max_items_per_request,
        max_chars=settings.max_text_chars,
    )
