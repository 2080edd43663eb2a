"""The transport seam under every client: a :class:`Call` goes in, a :class:`Reply` comes out.

* :class:`Transport` / :class:`AsyncTransport`: the protocols (``send`` / ``asend``).
* :class:`ResilientTransport`: a transport that sends through a resilience pipeline.
* :class:`MockTransport`: answers with a plain function, for tests without a socket.
* :class:`Http1Transport`, :class:`HttpxTransport`, :class:`RequestsTransport`,
  :class:`GrpcTransport`: the network, imported on first use.
* :func:`probe_health`: the one health probe, gRPC or HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicegrid._lazy import lazy_exports
from servicegrid.transports.base import AsyncTransport, Call, Reply, Transport
from servicegrid.transports.mock import MockTransport
from servicegrid.transports.resilient import ResilientTransport, attempt_timeout

if TYPE_CHECKING:
    from servicegrid.transports.grpc_transport import GrpcTransport
    from servicegrid.transports.http1 import Http1Transport
    from servicegrid.transports.httpx_transport import HttpxTransport
    from servicegrid.transports.probe import Health, probe_health
    from servicegrid.transports.requests_transport import RequestsTransport

__all__ = [
    "AsyncTransport",
    "Call",
    "GrpcTransport",
    "Health",
    "Http1Transport",
    "HttpxTransport",
    "MockTransport",
    "Reply",
    "RequestsTransport",
    "ResilientTransport",
    "Transport",
    "attempt_timeout",
    "probe_health",
]

_LAZY = {
    "Http1Transport": "servicegrid.transports.http1",
    "GrpcTransport": "servicegrid.transports.grpc_transport",
    "HttpxTransport": "servicegrid.transports.httpx_transport",
    "RequestsTransport": "servicegrid.transports.requests_transport",
    "Health": "servicegrid.transports.probe",
    "probe_health": "servicegrid.transports.probe",
}

__getattr__ = lazy_exports(__name__, _LAZY)
