"""A pool of HTTP/1.1 connections for one event loop: limits, keep-alive, connecting.

``max_connections`` bounds the open connections across all origins; a request
that finds none free waits, first come first served, at most ``pool`` seconds.
Connections go back to the pool when their answer allows it and stay at most
``keepalive_expiry`` seconds idle; beyond ``max_keepalive_connections`` idle
ones are closed. Connecting (TCP, TLS, a proxy's ``CONNECT`` tunnel) is bounded
by the ``connect`` timeout, and its failures are servicegrid errors.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from typing import NamedTuple

from servicegrid.errors import ConnectError, ConnectTimeout, TransportError
from servicegrid.transports.http import PhaseTimeouts, PoolLimits
from servicegrid.transports.http1_connection import Http1Connection, Response, StaleConnection

__all__ = ["ConnectionPool", "Origin"]


class Origin(NamedTuple):
    """Where a connection goes: the server, or the proxy in front of it (``via``)."""

    scheme: str
    host: str
    port: int
    via: tuple[str, int, str | None] | None = None  # proxy host, port, "user:password"


class ConnectionPool:
    """The connections of one event loop; see the module docstring."""

    def __init__(
        self,
        limits: PoolLimits,
        ssl_context: ssl.SSLContext | None,
        *,
        service: str | None,
    ) -> None:
        self.limits = limits
        self.service = service
        self._ssl = ssl_context
        self._loop = asyncio.get_running_loop()
        self._idle: dict[Origin, deque[Http1Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # ---- exchanges ---------------------------------------------------------------------

    async def send(
        self, origin: Origin, request: bytes, *, what: str, head_only: bool, timeouts: PhaseTimeouts
    ) -> Response:
        """Send ``request`` to ``origin`` on a pooled or new connection and return the answer.

        A pooled connection the server had already closed costs one more try on a new one.
        """
        connection, reused = await self._acquire(origin, what, timeouts)
        while True:
            try:
                response = await connection.exchange(
                    request,
                    what=what,
                    head_only=head_only,
                    read_timeout=timeouts.read,
                    write_timeout=timeouts.write,
                )
            except StaleConnection:
                self._discard(connection)
                if not reused:
                    raise
                connection, reused = await self._connect_counted(origin, what, timeouts), False
                continue
            except BaseException:
                self._discard(connection)
                raise
            self._release(origin, connection, response.keep_alive)
            return response

    # ---- connections -------------------------------------------------------------------

    async def _acquire(
        self, origin: Origin, what: str, timeouts: PhaseTimeouts
    ) -> tuple[Http1Connection, bool]:
        """An idle connection to ``origin`` (True: reused), or a new one once the limit allows."""
        if self._closed:
            raise TransportError(f"{what}: the connection pool is closed", service=self.service)
        idle = self._idle.get(origin)
        if idle:
            now = self._loop.time()
            while idle:
                connection = idle.pop()
                self._idle_count -= 1
                if not connection.closed and now - connection.idle_since < self._expiry:
                    return connection, True
                self._discard(connection)
        if self._open >= self.limits.max_connections:
            await self._wait_for_room(origin, what, timeouts.pool)
            return await self._acquire(origin, what, timeouts)
        return await self._connect_counted(origin, what, timeouts), False

    @property
    def _expiry(self) -> float:
        return self.limits.keepalive_expiry

    @property
    def open_connections(self) -> int:
        """Connections open now, in use or idle."""
        return self._open

    async def _wait_for_room(self, origin: Origin, what: str, pool_timeout: float) -> None:
        """Wait until a connection may be opened or one to ``origin`` is idle."""
        if self._close_an_idle_one():
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(pool_timeout):
                await waiter
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"{what}: no free connection in the pool within {pool_timeout:g}s",
                service=self.service,
            ) from exc
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _close_an_idle_one(self) -> bool:
        """Make room by closing an idle connection to some other origin; True if one was."""
        for connections in self._idle.values():
            if connections:
                self._discard(connections.popleft(), idle=True)
                return True
        return False

    async def _connect_counted(
        self, origin: Origin, what: str, timeouts: PhaseTimeouts
    ) -> Http1Connection:
        self._open += 1
        try:
            return await self._connect(origin, what, timeouts.connect)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _connect(self, origin: Origin, what: str, connect_timeout: float) -> Http1Connection:
        secure = origin.scheme == "https"
        host, port = (origin.via[0], origin.via[1]) if origin.via else (origin.host, origin.port)
        try:
            async with asyncio.timeout(connect_timeout):
                if origin.via is not None and secure:
                    return await self._connect_through_tunnel(origin, what)
                _, connection = await self._loop.create_connection(
                    lambda: Http1Connection(self._loop, self.service),
                    host,
                    port,
                    ssl=self._tls_context() if secure else None,
                    server_hostname=origin.host if secure else None,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"{what}: timed out connecting to {host}:{port}", service=self.service
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(
                f"{what}: connection to {host}:{port} failed: {exc}", service=self.service
            ) from exc
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            raise ConnectError("HTTPS needs certificate checks on (verify)", service=self.service)
        return self._ssl

    async def _connect_through_tunnel(self, origin: Origin, what: str) -> Http1Connection:
        """HTTPS through a proxy: ``CONNECT host:port``, then TLS inside the tunnel."""
        assert origin.via is not None
        proxy_host, proxy_port, credentials = origin.via
        authority = f"{origin.host}:{origin.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if credentials:
            token = base64.b64encode(credentials.encode()).decode("ascii")
            lines.append(f"Proxy-Authorization: Basic {token}")
        transport, opening = await self._loop.create_connection(
            lambda: _TunnelOpening(self._loop), proxy_host, proxy_port
        )
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        try:
            status_line = await opening.answer
        except BaseException:
            transport.close()
            raise
        if not status_line.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
            transport.close()
            raise ConnectError(
                f"{what}: the proxy refused the tunnel: {status_line.decode('latin-1')}",
                service=self.service,
            )
        connection = Http1Connection(self._loop, self.service)
        tls = await self._loop.start_tls(
            transport, connection, self._tls_context(), server_hostname=origin.host
        )
        if tls is None:
            raise ConnectError(f"{what}: TLS through the proxy failed", service=self.service)
        connection.connection_made(tls)
        return connection

    def _release(self, origin: Origin, connection: Http1Connection, keep_alive: bool) -> None:
        if not keep_alive or connection.closed or self._closed:
            self._discard(connection)
            return
        if self._idle_count >= self.limits.max_keepalive_connections:
            self._discard(connection)
            return
        connection.idle_since = self._loop.time()
        self._idle.setdefault(origin, deque()).append(connection)
        self._idle_count += 1
        self._wake_one()

    def _discard(self, connection: Http1Connection, *, idle: bool = False) -> None:
        if idle:
            self._idle_count -= 1
        connection.close()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every connection; later sends raise TransportError."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


class _TunnelOpening(asyncio.Protocol):
    """Reads a proxy's answer to ``CONNECT``; ``answer`` is its status line."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answer: asyncio.Future[bytes] = loop.create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\r\n\r\n" in self._buffer and not self.answer.done():
            self.answer.set_result(self._buffer.split(b"\r\n", 1)[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("the proxy closed the connection"))
