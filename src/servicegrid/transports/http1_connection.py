"""One HTTP/1.1 connection: an asyncio protocol whose responses httptools (llhttp, in C) parses.

:meth:`Http1Connection.exchange` writes one request and returns its response;
the connection then either goes back to its pool (keep-alive) or is closed.
Errors are servicegrid errors: :class:`~servicegrid.errors.ReadTimeout`,
:class:`~servicegrid.errors.ConnectionLost` (closed mid-answer, or an answer
that is not HTTP), and :class:`StaleConnection` when a connection taken from
the pool turns out to have been closed before it said anything: the request
may be sent again on a new one.
"""

from __future__ import annotations

import asyncio
from typing import Final, NamedTuple

import httptools

from servicegrid.errors import ConnectionLost, DeadlineExceeded, ReadTimeout

__all__ = ["Http1Connection", "Response", "StaleConnection"]

_VERSIONS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})
_NO_BODY: Final = frozenset({204, 304})


class StaleConnection(ConnectionLost):
    """The connection was closed before any byte of the answer arrived (a pooled one the
    server had already let go): nothing was received, so the request may go again."""

    default_message = "connection closed before the answer began"


class Response(NamedTuple):
    """What one exchange received; ``body`` as sent (still encoded)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: str
    keep_alive: bool


class Http1Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection; one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, service: str | None) -> None:
        self.loop = loop
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._what = ""
        self._head_only = False
        self._received = False
        self._headers_done = False
        self._until_close = False
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._read_timeout = 0.0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._received = True
        self._last_read = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(
                ConnectionLost(
                    f"{self._what}: the answer is not HTTP/1.1: {exc}", service=self.service
                )
            )
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and self._until_close:
            self._finish(keep_alive=False)  # a body that ends where the connection does
        elif not self._received:
            self._fail(
                StaleConnection(
                    f"{self._what}: connection closed before the answer", service=self.service
                )
            )
        else:
            why = f": {exc}" if exc else ""
            self._fail(
                ConnectionLost(
                    f"{self._what}: connection closed mid-answer{why}", service=self.service
                )
            )

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # ---- llhttp callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers = []  # an interim answer (100 Continue, 103): the real one follows
            return
        self._status = status
        self._headers_done = True
        self._until_close = (
            not any(name.lower() in _FRAMING for name, _ in self._headers)
            and status not in _NO_BODY
        )
        if self._head_only:
            # the answer to HEAD has no body, whatever its Content-Length says; the parser
            # cannot know, so this connection is not used again
            self._finish(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done and not self._head_only:
            self._finish(keep_alive=self._parser.should_keep_alive())

    # ---- one exchange ------------------------------------------------------------------

    async def exchange(
        self,
        request: bytes,
        *,
        what: str,
        head_only: bool,
        read_timeout: float | None,
        write_timeout: float | None,
    ) -> Response:
        """Send ``request`` (head and body) and return the answer to it."""
        transport = self.transport
        if transport is None or self.closed:
            raise StaleConnection(f"{what}: the connection is closed", service=self.service)
        self._what = what
        self._head_only = head_only
        self._received = self._headers_done = False
        self._headers, self._body = [], []
        waiter = self._waiter = self.loop.create_future()
        transport.write(request)
        if self._paused:
            await self._drain(what, write_timeout)
        if read_timeout is not None:
            self._read_timeout = read_timeout
            self._last_read = self.loop.time()
            self._timer = self.loop.call_at(self._last_read + read_timeout, self._check_read)
        try:
            response: Response = await waiter
            return response
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiter = None

    async def _drain(self, what: str, write_timeout: float | None) -> None:
        self._drained = self.loop.create_future()
        try:
            async with asyncio.timeout(write_timeout):
                await self._drained
        except TimeoutError as exc:
            self.close()
            raise DeadlineExceeded(
                f"{what}: timed out sending the request", service=self.service
            ) from exc
        finally:
            self._drained = None

    def _check_read(self) -> None:
        """The read timeout: no byte for ``read_timeout`` seconds fails the exchange."""
        idle = self.loop.time() - self._last_read
        if idle < self._read_timeout:
            self._timer = self.loop.call_at(self._last_read + self._read_timeout, self._check_read)
            return
        self._timer = None
        self._fail(
            ReadTimeout(f"{self._what}: timed out waiting for the answer", service=self.service)
        )
        self.close()

    def _finish(self, *, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        version = _VERSIONS.get(self._parser.get_http_version(), "HTTP/1.1")
        waiter.set_result(
            Response(self._status, self._headers, b"".join(self._body), version, keep_alive)
        )

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        """Close at once; idempotent."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()
