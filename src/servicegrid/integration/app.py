"""The integration service's FastAPI app: migrations at start, routes under ``/api``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from servicegrid import catalogue
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import PayloadTooLarge
from servicegrid.http_limits import BodyLimitMiddleware
from servicegrid.integration.actions import ActionInvoker
from servicegrid.integration.db import create_engine, session_factory, upgrade_to_head
from servicegrid.integration.engine import ExecutionEngine, dbos_system_url
from servicegrid.integration.execution_sql import open_statements
from servicegrid.integration.executions import ExecutionStore
from servicegrid.integration.handlers import SafeJSONResponse, error_body, install_error_handlers
from servicegrid.integration.native import NativeStepRunner
from servicegrid.integration.registry import ServiceRegistry
from servicegrid.integration.retention import DEFAULT_PURGE_INTERVAL, RetentionSweeper
from servicegrid.integration.routes.actions import create_actions_router
from servicegrid.integration.routes.executions import create_executions_router
from servicegrid.integration.routes.health import create_health_router
from servicegrid.integration.routes.services import create_services_router
from servicegrid.integration.routes.workflows import create_workflows_router
from servicegrid.integration.service_health import ServiceHealthBoard
from servicegrid.integration.workers import DEFAULT_WORKER_TIMEOUT, WorkerWatch
from servicegrid.integration.workflows import WorkflowStore

__all__ = ["API_PREFIX", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_PORT", "create_app"]

_SPEC = catalogue.lookup("integration")
API_PREFIX = _SPEC.base_path
DEFAULT_PORT = _SPEC.port
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
"""The largest request body the app takes by default (10 MiB)."""


def _too_large(path: str, limit: int) -> ASGIApp:
    error = PayloadTooLarge(
        f"request body is larger than the limit of {limit / (1024 * 1024):g} MiB",
        details={"max_bytes": limit},
    )
    return SafeJSONResponse(status_code=error.http_status, content=error_body(error))


def create_app(
    database_url: str,
    *,
    system_database_url: str | None = None,
    native: NativeStepRunner | None = None,
    executor_id: str | None = None,
    health_interval: float = 30.0,
    engine_poll_interval: float = 1.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retention_days: float = 0,
    purge_interval: float = DEFAULT_PURGE_INTERVAL,
    clock: Clock = SYSTEM_CLOCK,
    discovery: Discovery | None = None,
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
) -> FastAPI:
    """The app for ``database_url``; its lifespan migrates the database, then serves.

    Executions are checkpointed in ``system_database_url`` (by default derived from
    ``database_url``, see :func:`~servicegrid.integration.engine.dbos_system_url`); the lifespan
    resumes every execution a previous process left unfinished. ``native`` runs native steps
    (default: one configured from the environment when the app starts, never inside a step).
    ``engine_poll_interval`` is how often the durable engine's background threads poll, and so
    how long shutdown may wait.

    A request body over ``max_body_bytes`` is answered 413. With ``retention_days`` above 0,
    executions finished longer ago are purged at start and every ``purge_interval`` seconds
    (see :mod:`~servicegrid.integration.retention`; ``clock`` tells the time); 0 keeps them.

    With ``discovery`` (owned by the caller), a registered endpoint whose host is a service name
    it knows (``http://text-extraction-service:8000/api``) is called at the instances it finds.

    On PostgreSQL the worker (``executor_id``, default ``local``) writes a heartbeat, and takes
    over the executions of a worker silent for ``worker_timeout`` seconds
    (:mod:`~servicegrid.integration.workers`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade_to_head, database_url)
        database = create_engine(database_url)
        sessions = session_factory(database)
        registry = ServiceRegistry(sessions)
        statements = await open_statements(database)
        executions = ExecutionStore(sessions, statements)
        invoker = ActionInvoker(
            registry, native=native or NativeStepRunner(), clock=clock, discovery=discovery
        )
        board = ServiceHealthBoard(interval=health_interval)
        engine = ExecutionEngine(
            executions,
            invoker,
            system_database_url=system_database_url or dbos_system_url(database_url),
            executor_id=executor_id,
            poll_interval=engine_poll_interval,
            clock=clock,
        )
        app.state.database = database
        app.state.service_registry = registry
        app.state.workflows = WorkflowStore(sessions, registry)
        app.state.executions = executions
        app.state.invoker = invoker
        app.state.health_board = board
        app.state.execution_engine = engine
        sweeper = (
            RetentionSweeper(
                database, retention_days=retention_days, interval=purge_interval, clock=clock
            )
            if retention_days > 0
            else None
        )
        app.state.retention = sweeper
        await engine.start()
        watch = (
            WorkerWatch(
                database,
                executor_id=executor_id or "local",
                recover=engine.durable.recover,
                settle=engine.settle_unfinished,
                timeout=worker_timeout,
                clock=clock,
            )
            if database.dialect.name == "postgresql"
            else None
        )
        if watch is not None:
            await watch.start()
        app.state.worker_watch = watch
        if sweeper is not None:
            sweeper.start()
        try:
            yield
        finally:
            if sweeper is not None:
                await sweeper.aclose()
            if watch is not None:
                await watch.aclose()
            await engine.stop()
            await board.aclose()
            await invoker.aclose()
            await statements.close()
            await database.dispose()

    app = FastAPI(title="servicegrid integration service", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, refuse=_too_large)
    for router in (
        create_services_router(),
        create_workflows_router(),
        create_executions_router(),
        create_actions_router(),
        create_health_router(),
    ):
        app.include_router(router, prefix=API_PREFIX)
    return app
