"""The one health probe: ``grpc.health.v1`` for a gRPC target, ``GET {url}/health`` for HTTP.

.. code-block:: python

    health = await probe_health("localhost:50052", timeout=2.0)           # gRPC
    health = await probe_health("http://localhost:8005/api", timeout=2.0)  # HTTP
    health.serving, health.status            # True, "SERVING" / "HTTP 200"

Every client, the CLI's ``status`` and ``up``, ``HealthChecker`` and the
integration service's per-service monitors ask through this function. It
bypasses retry and breaker (a probe reports; it does not insist) and sends
through the caller's own transport when given one, else through a
short-lived one with servicegrid's channel defaults (TLS with ``credentials``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from servicegrid.transports.base import AsyncTransport, Call
from servicegrid.transports.grpc import ChannelOption
from servicegrid.transports.grpc_transport import GrpcTransport
from servicegrid.transports.http1 import Http1Transport

__all__ = ["HEALTH_CHECK_METHOD", "Health", "is_http_target", "probe_health"]

HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True, slots=True)
class Health:
    """What a probe found: ``serving``, and the status as the service said it.

    ``status`` is the gRPC serving status (``"SERVING"``, ``"NOT_SERVING"``,
    ...) or ``"HTTP 200"``; ``code`` is the HTTP status (0 for gRPC).
    """

    serving: bool
    status: str
    code: int = 0


def is_http_target(target: str) -> bool:
    """Whether ``target`` is an HTTP URL rather than a gRPC target."""
    return target.lower().startswith(("http://", "https://"))


async def probe_health(
    target: str,
    *,
    timeout: float,  # noqa: ASYNC109 - sent as the probe's own deadline
    service: str = "",
    path: str = "/health",
    transport: AsyncTransport | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    channel_options: Sequence[ChannelOption] = (),
    headers: Sequence[tuple[str, str]] = (),
    name: str | None = None,
) -> Health:
    """Ask ``target`` whether it serves, within ``timeout`` seconds.

    gRPC: ``Health/Check`` for ``service`` (``""``: the whole server). HTTP:
    ``GET {target}{path}``, redirects followed; any status below 400 is serving.
    ``headers`` go with the probe (HTTP headers, gRPC metadata).
    Raises the typed :class:`~servicegrid.errors.ServiceError` when the target
    cannot be asked at all (refused, timed out, unknown service: NOT_FOUND).
    """
    owned: AsyncTransport | None = None
    if is_http_target(target):
        call = Call(
            "GET",
            target.rstrip("/") + "/" + path.lstrip("/"),
            headers=tuple(headers),
            timeout=timeout,
            options={"follow_redirects": True},
            name=f"GET {path}",
        )
        if transport is None:
            transport = owned = Http1Transport(trust_env=False, service=name)
    else:
        call = Call(
            HEALTH_CHECK_METHOD,
            body=health_pb2.HealthCheckRequest(service=service),
            headers=tuple(headers),
            timeout=timeout,
            name="grpc.health.v1.Health/Check",
        )
        if transport is None:
            transport = owned = GrpcTransport(
                target, credentials=credentials, options=channel_options, service=name
            )
    try:
        reply = await transport.asend(call)
    finally:
        if owned is not None:
            await owned.aclose()
    if call.url:
        return Health(reply.status < 400, f"HTTP {reply.status}", reply.status)
    status = str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.body.status))
    return Health(status == "SERVING", status)
