"""Serve one application's REST app and gRPC servicers in one process, until SIGTERM.

.. code-block:: python

    await serve_rest_and_grpc(
        settings, "users", app, [registration], host="0.0.0.0", port=8001, grpc_port=50061
    )

The gRPC server starts first and reports SERVING; uvicorn then serves REST until
SIGTERM or SIGINT. While both run, the service is registered in discovery under
its name and ``<name>-grpc``. On the signal uvicorn finishes the requests in
flight, the service is deregistered, health turns NOT_SERVING and the gRPC
server gives its calls ``SERVICEGRID_SHUTDOWN_GRACE`` seconds before it stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from servicegrid.apps._store import SqlStore
from servicegrid.discovery.registration import announced
from servicegrid.runtime import RunningServer, ServiceRegistration, create_server
from servicegrid.runtime.uvicorn_server import GracefulServer
from servicegrid.settings import Settings

__all__ = ["serve_over_store", "serve_rest_and_grpc"]

StoreT = TypeVar("StoreT", bound=SqlStore)

_MIB = 1024 * 1024

_log = logging.getLogger("servicegrid.apps")


async def serve_rest_and_grpc(
    settings: Settings,
    name: str,
    app: FastAPI,
    services: Sequence[ServiceRegistration],
    *,
    host: str,
    port: int,
    grpc_port: int,
) -> None:
    """Serve ``app`` on ``host:port`` and ``services`` on ``host:grpc_port``; see the module.

    Raises RuntimeError when either port cannot be bound.
    """
    running: RunningServer = await create_server(
        f"{host}:{grpc_port}",
        services=services,
        max_message_bytes=settings.max_message_mb * _MIB,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
    server = GracefulServer(config)
    await running.server.start()
    try:
        await running.health.set_all(True)
        _log.info("%s on http://%s:%d and gRPC %s:%d", name, host, port, host, running.port)
        async with announced(settings, name, port=port, grpc_port=running.port):
            await server.serve()
    finally:
        await running.health.shutdown()
        await running.server.stop(settings.shutdown_grace)
    if not server.started:
        raise RuntimeError(f"could not serve REST on {host}:{port}")


async def serve_over_store(
    settings: Settings,
    name: str,
    store: StoreT,
    app: Callable[[StoreT], FastAPI],
    servicer: Callable[[StoreT], ServiceRegistration],
    *,
    host: str,
    port: int,
    grpc_port: int,
) -> None:
    """Open ``store``, serve ``app(store)`` and ``servicer(store)`` over it as
    :func:`serve_rest_and_grpc` does, and close the store after."""
    await store.open()
    try:
        await serve_rest_and_grpc(
            settings, name, app(store), [servicer(store)], host=host, port=port, grpc_port=grpc_port
        )
    finally:
        await store.aclose()
