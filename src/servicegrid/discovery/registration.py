"""A servicegrid service announces itself in Consul and etcd while it runs.

.. code-block:: python

    async with announced(settings, "users", port=8001, grpc_port=50061):
        await server.serve()

Registration happens only where discovery is configured (``CONSUL_HOST``,
``ETCD_HOST``), at ``SERVICEGRID_ADVERTISE_ADDRESS`` (default: this host's
address). Each entry is kept alive while the service runs (a TTL check passed
in Consul, a lease renewed in etcd), so a process that dies disappears within
its TTL; a clean stop deregisters at once. A service with both protocols is
registered twice: ``user-service`` and ``user-service-grpc``. A registry that
cannot be reached is logged and does not stop the service from serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from servicegrid import catalogue
from servicegrid.discovery.base import Registrar, Registration, ServiceName
from servicegrid.discovery.resolver import configured_backend
from servicegrid.settings import Settings

__all__ = ["DEFAULT_TTL", "advertise_host", "announced", "announcer", "registrars_from_settings"]

DEFAULT_TTL: Final = 10.0
"""Seconds an entry lives without renewal: a killed process is gone from the registry after it."""

RETRY_FIRST: Final = 1.0
RETRY_MAX: Final = 30.0

_log = logging.getLogger("servicegrid.discovery")
_UNSAFE_ID: Final = re.compile(r"[^A-Za-z0-9_.-]")


def registrars_from_settings(settings: Settings) -> list[Registrar]:
    """A registrar for each registry that ``settings`` configure (Consul, etcd)."""
    registrars: list[Registrar] = []
    for kind in ("consul", "etcd"):
        backend: object = configured_backend(settings, kind)
        if isinstance(backend, Registrar):
            registrars.append(backend)
    return registrars


def advertise_host(settings: Settings) -> str:
    """Where others reach this process: ``SERVICEGRID_ADVERTISE_ADDRESS``, else this host's
    address as its own name resolves, else loopback."""
    if settings.advertise_address:
        return settings.advertise_address
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return address


def _registrations(
    settings: Settings, service: str, host: str, port: int, grpc_port: int | None
) -> list[Registration]:
    name = ServiceName.parse(service, settings.discovery_names)
    spec = name.spec
    main = "grpc" if spec is not None and spec.is_grpc else "http"
    base_path = spec.base_path if spec is not None else ""
    faces: list[tuple[Any, int, str]] = [(main, port, base_path)]
    if grpc_port is not None and main == "http":
        faces.append(("grpc", grpc_port, ""))
    registrations = []
    for protocol, face_port, path in faces:
        registered = name.registered_as(protocol)
        registrations.append(
            Registration(
                name=registered,
                host=host,
                port=face_port,
                protocol=protocol,
                id=_UNSAFE_ID.sub("-", f"{registered}-{host}-{face_port}"),
                path=path,
                tags=("servicegrid", protocol),
                metadata={"scheme": "grpc" if protocol == "grpc" else "http", "path": path},
                ttl=DEFAULT_TTL,
            )
        )
    return registrations


async def _register(registrar: Registrar, registration: Registration) -> bool:
    try:
        await registrar.register(registration)
    except Exception as error:
        _log.error("could not register %s in %s: %s", registration.id, registrar.name, error)
        return False
    _log.info(
        "registered %s at %s:%d in %s",
        registration.name,
        registration.host,
        registration.port,
        registrar.name,
    )
    return True


async def _keep_trying(
    pending: list[tuple[Registrar, Registration]], done: list[tuple[Registrar, Registration]]
) -> None:
    """Register what failed at start, with a capped backoff, until every one has succeeded."""
    delay = RETRY_FIRST
    while pending:
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)
        for entry in list(pending):
            if await _register(*entry):
                pending.remove(entry)
                done.append(entry)


@contextlib.asynccontextmanager
async def announced(
    settings: Settings,
    service: str,
    *,
    port: int,
    grpc_port: int | None = None,
    registrars: list[Registrar] | None = None,
) -> AsyncIterator[list[Registration]]:
    """Register ``service`` (a catalogue or discovery name) listening on ``port`` (and a
    gRPC ``grpc_port``) for the duration of the block; see the module docstring.

    A registry that cannot be reached at start is tried again in the background
    (after 1 s, then up to every 30 s) while the block lasts.
    """
    registrars = registrars_from_settings(settings) if registrars is None else registrars
    if not registrars:
        yield []
        return
    registrations = _registrations(settings, service, advertise_host(settings), port, grpc_port)
    done: list[tuple[Registrar, Registration]] = []
    pending: list[tuple[Registrar, Registration]] = []
    for registrar in registrars:
        for registration in registrations:
            entry = (registrar, registration)
            (done if await _register(*entry) else pending).append(entry)
    retrying = asyncio.create_task(_keep_trying(pending, done)) if pending else None
    try:
        yield registrations
    finally:
        if retrying is not None:
            retrying.cancel()
            await asyncio.gather(retrying, return_exceptions=True)
        for registrar, registration in done:
            try:
                await registrar.deregister(registration)
            except Exception as error:
                _log.warning("could not deregister %s: %s", registration.id, error)
        for registrar in registrars:
            close = getattr(registrar, "aclose", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    await close()


def announcer(
    settings: Settings, service: str
) -> Callable[[Any], AbstractAsyncContextManager[list[Registration]]]:
    """For :func:`servicegrid.runtime.serve`: announce a gRPC service on its bound port."""
    catalogue.lookup(service)  # a typo fails at start, not at registration

    def announce(running: Any) -> AbstractAsyncContextManager[list[Registration]]:
        return announced(settings, service, port=int(running.port))

    return announce
