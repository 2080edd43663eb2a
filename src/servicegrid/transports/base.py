"""The transport seam: one :class:`Call` in, one :class:`Reply` out, for HTTP and gRPC alike.

Every client reaches the network through a transport (httpx's ``BaseTransport``
is the model). :class:`Transport` serves threads, :class:`AsyncTransport`
event loops; a transport may implement both. Transports translate their
library's exceptions into servicegrid errors; what an error *status* means
is decided above them (:class:`~servicegrid.transports.resilient.ResilientTransport`).

.. code-block:: python

    call = Call("GET", "http://embedding:8080/health", timeout=2.0)
    reply = await transport.asend(call)          # reply.status, reply.headers, reply.body
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable

__all__ = ["AsyncTransport", "Call", "HeaderPairs", "Reply", "Transport"]

HeaderPairs = Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]]
"""Headers (HTTP) or metadata (gRPC) as name/value pairs, in the order sent or received."""

_NO_OPTIONS: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(slots=True)
class Call:
    """One request, whatever the protocol. Treat it as immutable; :meth:`with_timeout` copies.

    * ``method``: the HTTP method (``"POST"``) or the full gRPC method
      (``"/servicegrid.v1.EmbeddingService/GenerateEmbeddings"``).
    * ``url``: the absolute URL (HTTP); gRPC transports know their target.
    * ``headers``: HTTP headers or gRPC metadata.
    * ``body``: the encoded body (``bytes``, HTTP) or the request message (gRPC).
    * ``timeout``: seconds one attempt may take; None for the transport's own limits.
    * ``options``: protocol extras a transport may honour (``follow_redirects``).
    * ``name``: how errors and logs name the call (``"GET /health"``).
    """

    method: str
    url: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: Any = None
    timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _NO_OPTIONS)
    name: str = ""

    def describe(self) -> str:
        """``name``, or ``"METHOD url"``."""
        return self.name or f"{self.method} {self.url}".rstrip()

    def with_timeout(self, timeout: float | None) -> Call:
        """A copy that may take at most ``timeout`` seconds."""
        return Call(
            self.method, self.url, self.headers, self.body, timeout, self.options, self.name
        )


@dataclass(slots=True)
class Reply:
    """What came back: a status, headers, a body, and the library's own response if it made one.

    ``status`` is the HTTP status (a gRPC reply is 200: failed RPCs are errors).
    ``body`` is the bytes of an HTTP answer or the gRPC response message; it may
    be None when only ``raw`` (a ``requests.Response``, an ``httpx.Response``)
    holds it.
    """

    status: int = 200
    headers: HeaderPairs | Mapping[str, str] = ()
    body: Any = None
    raw: Any = None
    http_version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        headers = self.headers
        if isinstance(headers, Mapping):
            found = headers.get(name)
            return None if found is None else str(found)
        wanted = name.lower()
        for key, value in headers:
            text = key.decode("latin-1") if isinstance(key, bytes) else key
            if text.lower() == wanted:
                return value.decode("latin-1") if isinstance(value, bytes) else value
        return None

    def header_items(self) -> list[tuple[str, str]]:
        """Every header as a (name, value) pair of text, in order."""
        headers = self.headers
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return [
            (
                key.decode("latin-1") if isinstance(key, bytes) else str(key),
                value.decode("latin-1") if isinstance(value, bytes) else str(value),
            )
            for key, value in pairs
        ]

    @property
    def content(self) -> bytes:
        """The body as bytes (empty when there is none)."""
        if isinstance(self.body, bytes):
            return self.body
        raw_content = getattr(self.raw, "content", None)
        return raw_content if isinstance(raw_content, bytes) else b""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return jsonlib.loads(self.content)


@runtime_checkable
class Transport(Protocol):
    """Sends calls from threads: ``send`` blocks until the reply (or an error) arrives."""

    def send(self, call: Call) -> Reply:
        """Send ``call``; raise a :class:`~servicegrid.errors.ServiceError` if no reply came."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends calls from event loops: ``asend`` awaits the reply (or an error)."""

    async def asend(self, call: Call) -> Reply:
        """Send ``call``; raise a :class:`~servicegrid.errors.ServiceError` if no reply came."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...
