"""Build a ``grpc.aio`` server with health, reflection, interceptors, size caps and TLS.

.. code-block:: python

    running = await create_server(
        "[::]:50052",
        services=[ServiceRegistration(EMBEDDING, add_EmbeddingServiceServicer_to_server, svc)],
    )
    await serve(running)          # servicegrid.runtime.lifecycle

:func:`create_server` binds but does not start: :func:`~servicegrid.runtime.lifecycle.serve`
(or a test) starts it, and marks the services SERVING once they can answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry

from servicegrid.runtime.decoding import guarded
from servicegrid.runtime.interceptors import chained, default_interceptors

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "HEALTH_SERVICE_NAME",
    "REFLECTION_SERVICE_NAME",
    "HealthServicerHandle",
    "RunningServer",
    "ServerTLS",
    "ServiceRegistration",
    "create_server",
]

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
HEALTH_SERVICE_NAME: Final[str] = health.SERVICE_NAME
REFLECTION_SERVICE_NAME: Final[str] = reflection.SERVICE_NAME

AddToServer = Callable[[Any, grpc.aio.Server], None]


@dataclass(frozen=True, slots=True)
class ServiceRegistration:
    """One service to serve: full name (``servicegrid.v1.EmbeddingService``), the generated
    ``add_*Servicer_to_server`` function and the servicer object."""

    name: str
    add_to_server: AddToServer
    servicer: object

    @classmethod
    def from_descriptor(
        cls, descriptor: ServiceDescriptor, add_to_server: AddToServer, servicer: object
    ) -> ServiceRegistration:
        """Take the name from ``*_pb2.DESCRIPTOR.services_by_name[...]``."""
        return cls(descriptor.full_name, add_to_server, servicer)


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """TLS from PEM file paths; with ``client_ca`` set, clients must present a certificate
    signed by it (mutual TLS)."""

    cert_chain: str | Path
    private_key: str | Path
    client_ca: str | Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Read the files and build the server credentials."""
        pair = (Path(self.private_key).read_bytes(), Path(self.cert_chain).read_bytes())
        root = None if self.client_ca is None else Path(self.client_ca).read_bytes()
        return grpc.ssl_server_credentials(
            [pair], root_certificates=root, require_client_auth=root is not None
        )


class HealthServicerHandle:
    """The standard ``grpc.health.v1`` servicer and the names it reports on ("" included).

    Every name starts NOT_SERVING. After :meth:`shutdown` every name is
    NOT_SERVING for good and later :meth:`set` calls are ignored.
    """

    def __init__(self, servicer: Any, services: Sequence[str]) -> None:
        self.servicer = servicer
        self.services: tuple[str, ...] = tuple(dict.fromkeys(("", *services)))
        self._serving = dict.fromkeys(self.services, False)
        self._shut_down = False

    @classmethod
    async def create(cls, services: Sequence[str]) -> HealthServicerHandle:
        """A fresh ``grpc_health.v1.health.aio.HealthServicer`` with every name NOT_SERVING."""
        handle = cls(health.aio.HealthServicer(), services)
        await handle.set_all(False)
        return handle

    async def set(self, service: str, serving: bool) -> None:
        """Report ``service`` as SERVING or NOT_SERVING."""
        if self._shut_down:
            return
        status = health_pb2.HealthCheckResponse
        await self.servicer.set(service, status.SERVING if serving else status.NOT_SERVING)
        self._serving[service] = serving

    async def set_all(self, serving: bool) -> None:
        """Report every name, "" included, as SERVING or NOT_SERVING."""
        for service in self.services:
            await self.set(service, serving)

    async def shutdown(self) -> None:
        """Set every name NOT_SERVING for good (the first step of a graceful stop)."""
        await self.set_all(False)
        self._shut_down = True
        await self.servicer.enter_graceful_shutdown()

    def is_serving(self, service: str = "") -> bool:
        """What this handle last reported for ``service`` (False for unknown names)."""
        return self._serving.get(service, False)


@dataclass(frozen=True, slots=True)
class RunningServer:
    """What :func:`create_server` returns: the bound (not yet started) ``server``, the real
    ``port`` it bound, its ``health`` and the names of the registered ``services``."""

    server: grpc.aio.Server
    port: int
    health: HealthServicerHandle
    services: tuple[str, ...]


async def create_server(
    address: str,
    *,
    services: Sequence[ServiceRegistration],
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
    registry: CollectorRegistry | None = None,
    tls: ServerTLS | None = None,
) -> RunningServer:
    """Build and bind a server for ``services``, plus health and reflection.

    ``interceptors`` replaces :func:`default_interceptors` (which get ``registry``,
    default the global Prometheus registry). Messages larger than
    ``max_message_bytes`` either way fail with RESOURCE_EXHAUSTED. Binding port 0
    picks a free port; the port is never shared (``SO_REUSEPORT`` off). Raises
    ValueError for no or duplicate services, RuntimeError when the address can't
    be bound.
    """
    names = [registration.name for registration in services]
    if not names:
        raise ValueError("create_server needs at least one service")
    if len(set(names)) != len(names):
        raise ValueError(f"services registered twice: {sorted(names)}")
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be > 0, got {max_message_bytes}")
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    stack = default_interceptors(registry=registry) if interceptors is None else interceptors
    server = grpc.aio.server(interceptors=chained(stack), options=options)
    for registration in services:
        guarded(registration.add_to_server, registration.servicer, server)
    health_handle = await HealthServicerHandle.create(names)
    health_pb2_grpc.add_HealthServicer_to_server(health_handle.servicer, server)
    reflection.enable_server_reflection(
        (*names, HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME), server
    )
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
    except RuntimeError as exc:
        raise RuntimeError(f"could not bind the gRPC server to {address}: {exc}") from exc
    if port == 0:
        raise RuntimeError(f"could not bind the gRPC server to {address}")
    return RunningServer(server=server, port=port, health=health_handle, services=tuple(names))
