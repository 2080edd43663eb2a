"""The integration service's FastAPI app: migrations at start, routes under ``/api``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from servicegrid.integration.db import create_engine, session_factory, upgrade_to_head
from servicegrid.integration.handlers import install_error_handlers
from servicegrid.integration.registry import ServiceRegistry
from servicegrid.integration.routes.health import create_health_router
from servicegrid.integration.routes.services import create_services_router

__all__ = ["API_PREFIX", "DEFAULT_PORT", "create_app"]

API_PREFIX = "/api"
DEFAULT_PORT = 8005


def create_app(database_url: str) -> FastAPI:
    """The app for ``database_url``; its lifespan migrates the database to head, then serves."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade_to_head, database_url)
        engine = create_engine(database_url)
        app.state.engine = engine
        app.state.service_registry = ServiceRegistry(session_factory(engine))
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="servicegrid integration service", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(create_services_router(), prefix=API_PREFIX)
    app.include_router(create_health_router(), prefix=API_PREFIX)
    return app
