"""``create_app(settings, *, clients)``: the gateway, assembled.

.. code-block:: python

    app = create_app(load_settings())            # clients built and closed in the lifespan
    app = create_app(settings, clients=clients)  # the caller's clients, never closed here
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.gateway.auth import ApiKeyMiddleware
from servicegrid.gateway.clients import GatewayClients
from servicegrid.gateway.coalescing import EmbeddingCoalescer
from servicegrid.gateway.document_jobs import DocumentJobs
from servicegrid.gateway.errors import install_error_handlers
from servicegrid.gateway.limits import BodyLimitMiddleware, RateLimitMiddleware
from servicegrid.gateway.models import ModelCatalogue
from servicegrid.gateway.routes.chat import chat_router
from servicegrid.gateway.routes.documents import documents_router
from servicegrid.gateway.routes.embeddings import embeddings_router
from servicegrid.gateway.routes.ops import RequestMetrics, ops_router
from servicegrid.gateway.routes.orchestrate import orchestrate_router
from servicegrid.gateway.routes.rerank import rerank_router
from servicegrid.gateway.routes.services import services_router
from servicegrid.gateway.routes.tei import tei_router
from servicegrid.retrieval.upstreams import Upstreams
from servicegrid.settings import Settings

__all__ = ["create_app"]

_log = logging.getLogger("servicegrid.gateway")
_MIB = 1024 * 1024


def _use(app: FastAPI, settings: Settings, clients: GatewayClients, clock: Clock) -> None:
    app.state.clients = clients
    upstreams = Upstreams(clients, owned=False)
    app.state.upstreams = upstreams
    try:  # the orchestrator's index needs the retrieval extra (qdrant-client)
        from servicegrid.retrieval.orchestrator import OrchestratorService
    except ImportError as error:
        _log.warning("the /orchestrate routes answer 503: %s", error)
        app.state.orchestrator = None
    else:
        app.state.orchestrator = OrchestratorService(settings, upstreams=upstreams, clock=clock)
    app.state.embedder = EmbeddingCoalescer(
        clients.embedding, max_texts=settings.max_items_per_request
    )
    app.state.models = ModelCatalogue(
        clients.embedding,
        clients.reranking,
        default_embedding=settings.embedding_model,
        default_reranking=settings.reranking_model,
        clock=clock,
    )


def create_app(
    settings: Settings, *, clients: GatewayClients | None = None, clock: Clock = SYSTEM_CLOCK
) -> FastAPI:
    """The gateway app; ``clients`` None: built from ``settings`` in the lifespan and closed
    at its end. State: ``app.state.settings``, ``.clients``, ``.models``, ``.ready``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if clients is None:
            owned = GatewayClients.from_settings(settings)
            await owned.start()
            _use(app, settings, owned, clock)
        if not settings.api_keys:
            _log.warning("SERVICEGRID_API_KEYS is empty: the gateway runs open, without keys")
        jobs = DocumentJobs.from_settings(settings, clock=clock)
        await jobs.open()
        app.state.document_jobs = jobs
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await app.state.embedder.aclose()
            if app.state.orchestrator is not None:
                await app.state.orchestrator.aclose()
            await jobs.aclose()  # jobs still running are stored as failed, then closed
            if owned is not None:
                await owned.aclose()

    registry = CollectorRegistry()
    app = FastAPI(
        title="servicegrid gateway",
        summary="OpenAI-, Cohere- and TEI-compatible REST over the servicegrid model services",
        lifespan=lifespan,
        middleware=[  # outermost first
            Middleware(RequestMetrics, registry=registry),
            Middleware(ApiKeyMiddleware, keys=settings.api_keys),
            Middleware(
                RateLimitMiddleware,
                rate=settings.rate_limit_rps,
                burst=settings.rate_limit_burst,
                clock=clock,
            ),
            Middleware(
                BodyLimitMiddleware,
                max_bytes=settings.gateway_max_body_mb * _MIB,
                # a PDF may be as large as the document service takes, plus the form around it
                per_path=dict.fromkeys(
                    ("/v1/documents", "/orchestrate/index-documents"),
                    (settings.documents_max_mb + 1) * _MIB,
                ),
            ),
        ],
    )
    app.state.settings = settings
    app.state.metrics_registry = registry
    app.state.started = time.time()  # OpenAI's `created`: wall-clock seconds
    # Given clients are open already (their owner opened them): ready at once.
    app.state.ready = clients is not None
    if clients is not None:
        _use(app, settings, clients, clock)
    install_error_handlers(app)

    app.include_router(ops_router())
    app.include_router(embeddings_router())
    app.include_router(rerank_router())
    app.include_router(tei_router())
    app.include_router(chat_router())
    app.include_router(documents_router())
    app.include_router(orchestrate_router())
    app.include_router(services_router())
    return app
