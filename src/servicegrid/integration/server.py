"""``servicegrid serve integration``: the integration service on uvicorn until SIGTERM."""

from __future__ import annotations

import logging

import uvicorn
from sqlalchemy.engine import make_url

from servicegrid.discovery.registration import announced
from servicegrid.discovery.resolver import Discovery
from servicegrid.integration.app import create_app
from servicegrid.integration.native import NativeStepRunner
from servicegrid.runtime.uvicorn_server import GracefulServer
from servicegrid.settings import Settings
from servicegrid.sql_engine import async_database_url, prepare_sqlite_folder

__all__ = ["run_integration_service"]

_log = logging.getLogger("servicegrid.integration")


async def run_integration_service(settings: Settings, *, host: str, port: int) -> None:
    """Serve the integration API on ``host:port`` (under ``/api``) until SIGTERM or SIGINT.

    On SIGTERM uvicorn stops taking requests and finishes those in flight; executions still
    running are resumed by the next start.
    """
    database_url = async_database_url(settings.database_url)
    prepare_sqlite_folder(database_url)
    discovery = Discovery.from_settings(settings)
    app = create_app(
        database_url,
        native=NativeStepRunner(settings=settings),
        discovery=discovery,
        executor_id=settings.integration_executor_id,
        max_body_bytes=settings.integration_max_body_mb * 1024 * 1024,
        retention_days=settings.execution_retention_days,
        worker_timeout=settings.worker_timeout,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
    server = GracefulServer(config)
    shown = make_url(database_url).render_as_string(hide_password=True)
    _log.info("integration service on http://%s:%d/api (database %s)", host, port, shown)
    try:
        async with announced(settings, "integration", port=port):
            await server.serve()
    finally:
        await discovery.aclose()
    if not server.started:
        raise RuntimeError(f"could not serve on {host}:{port}")
