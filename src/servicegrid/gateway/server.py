"""``servicegrid serve gateway``: the gateway on uvicorn until SIGTERM, registered in discovery."""

from __future__ import annotations

import logging

import uvicorn

from servicegrid.discovery.registration import announced
from servicegrid.gateway.app import create_app
from servicegrid.runtime.uvicorn_server import GracefulServer
from servicegrid.settings import Settings

__all__ = ["run_gateway"]

_log = logging.getLogger("servicegrid.gateway")


async def run_gateway(settings: Settings, *, host: str, port: int) -> None:
    """Serve the gateway on ``host:port`` until SIGTERM or SIGINT.

    Its clients open in the app's lifespan and close with it; on SIGTERM uvicorn
    stops taking requests and finishes those in flight (``SERVICEGRID_SHUTDOWN_GRACE``).
    Raises RuntimeError when it could not serve (the port taken, say).
    """
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
    server = GracefulServer(config)
    _log.info("gateway on http://%s:%d", host, port)
    async with announced(settings, "gateway", port=port):
        await server.serve()
    if not server.started:
        raise RuntimeError(f"could not serve on {host}:{port}")
