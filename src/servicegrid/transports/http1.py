"""``Http1Transport``: servicegrid's own async HTTP/1.1 transport, on asyncio and httptools.

Measured beside the clients a user would pick (docs/benchmarks.md), an
HTTP/1.1 keep-alive pool on asyncio's protocols with llhttp (httptools, in C)
parsing the answers carries several times the requests of aiohttp, and
aiohttp several times those of httpx: so the async HTTP client sends through
this one. What it does, as httpx does:

* timeouts per phase: ``connect`` (TCP, TLS, a proxy tunnel), ``read`` (no
  byte for that long), ``write``, ``pool`` (waiting for a free connection),
  each capped at the call's own timeout;
* pool limits: ``max_connections``, ``max_keepalive_connections``, ``keepalive_expiry``;
* TLS checked against certifi's bundle (or a given CA file or context);
* proxies from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (read once, at start);
* ``gzip`` and ``deflate`` answers decoded; redirects followed only when asked;
* every failure a servicegrid error (ConnectError, ConnectTimeout, ReadTimeout, ...).

It keeps no cookies between requests (an API client's calls should not depend
on each other); a request's own ``Cookie`` header goes out as given. HTTP/2 is
httpx's job (``HttpxTransport(http2=True)``).
"""

from __future__ import annotations

import ssl
import urllib.request
import zlib
from functools import cached_property
from typing import Final, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

from servicegrid.errors import TransportError, ValidationError
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http import PhaseTimeouts, PoolLimits
from servicegrid.transports.http1_pool import ConnectionPool, Origin
from servicegrid.transports.loop_local import LoopLocal

__all__ = ["Http1Transport"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 20
_BAD_HEADER_CHARS: Final = frozenset("\r\n\0")
_TARGET_CACHE_SIZE: Final = 1024


class _Target(NamedTuple):
    """A URL as one connection needs it: where to connect, and the head's first lines."""

    origin: Origin
    start: bytes  # b" /path?query HTTP/1.1\r\nHost: host:port\r\n" (after the method)


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _header_lines(headers: tuple[tuple[str, str], ...]) -> bytes:
    """``Name: value\\r\\n`` for each header; ValidationError for one that would break the head."""
    lines = []
    for name, value in headers:
        if _BAD_HEADER_CHARS.intersection(name) or _BAD_HEADER_CHARS.intersection(value):
            raise ValidationError.for_field(
                f"headers.{name}", "must not contain CR, LF or NUL characters"
            )
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def _decode(body: bytes, encoding: str | None) -> bytes:
    """``body`` without its ``Content-Encoding`` (gzip, deflate); other encodings as they came."""
    if not body or not encoding:
        return body
    for step in reversed([part.strip().lower() for part in encoding.split(",")]):
        if step in ("gzip", "x-gzip"):
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)
        elif step == "deflate":
            try:
                body = zlib.decompressobj().decompress(body)
            except zlib.error:  # "deflate" as raw deflate, which some servers send
                body = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)
        elif step not in ("identity", ""):
            return body
    return body


class Http1Transport:
    """An :class:`~servicegrid.transports.base.AsyncTransport`; see the module docstring.

    ``verify``: check server certificates (certifi's bundle), a CA bundle path,
    a ready ``ssl.SSLContext``, or False. ``trust_env``: honour proxy variables.
    ``default_headers`` go with every request; a call whose ``headers`` are
    this very tuple reuses their encoding. ``service`` names the service in errors.
    One connection pool per event loop.
    """

    def __init__(
        self,
        *,
        limits: PoolLimits | None = None,
        timeouts: PhaseTimeouts | None = None,
        verify: bool | str | ssl.SSLContext = True,
        trust_env: bool = True,
        default_headers: tuple[tuple[str, str], ...] = (),
        service: str | None = None,
    ) -> None:
        self.limits = limits or PoolLimits()
        self.timeouts = timeouts or PhaseTimeouts()
        self.service = service
        self.default_headers = default_headers
        self._default_lines = _header_lines(default_headers)
        self._verify = verify
        self._proxies = urllib.request.getproxies() if trust_env else {}
        self._targets: dict[str, _Target] = {}
        self._pools: LoopLocal[ConnectionPool] = LoopLocal(
            self._open_pool, ConnectionPool.aclose, what=service or "http"
        )

    @cached_property
    def _ssl(self) -> ssl.SSLContext | None:
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        if self._verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        import certifi  # httpx's own dependency: the same roots httpx trusts

        cafile = self._verify if isinstance(self._verify, str) else certifi.where()
        return ssl.create_default_context(cafile=cafile)

    def _open_pool(self) -> ConnectionPool:
        return ConnectionPool(self.limits, self._ssl, service=self.service)

    def pool(self) -> ConnectionPool:
        """The running event loop's connection pool, opened on first use there."""
        return self._pools.get()

    # ---- URLs --------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        found = self._targets.get(url)
        if found is None:
            found = self._parse(url)
            if len(self._targets) >= _TARGET_CACHE_SIZE:
                self._targets.clear()
            self._targets[url] = found
        return found

    def _parse(self, url: str) -> _Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise TransportError(f"{url!r} is not an http(s) URL", service=self.service)
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS[scheme]
        shown = f"[{host}]" if ":" in host else host
        authority = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
        path = parts.path or "/"
        target = f"{path}?{parts.query}" if parts.query else path
        proxy = self._proxy_for(scheme, host)
        if proxy is not None and scheme == "http":
            target = f"http://{authority}{target}"  # absolute form: the proxy forwards it
        start = f" {target} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy is not None and scheme == "http" and proxy[2]:
            import base64

            token = base64.b64encode(proxy[2].encode()).decode("ascii")
            start += f"Proxy-Authorization: Basic {token}\r\n"
        return _Target(Origin(scheme, host, port, proxy), start.encode("latin-1"))

    def _proxy_for(self, scheme: str, host: str) -> tuple[str, int, str | None] | None:
        proxy_url = self._proxies.get(scheme)
        if not proxy_url or urllib.request.proxy_bypass(host):
            return None
        proxy = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
        if not proxy.hostname:
            return None
        credentials = (
            f"{unquote(proxy.username)}:{unquote(proxy.password or '')}" if proxy.username else None
        )
        return proxy.hostname, proxy.port or 80, credentials

    # ---- sending -----------------------------------------------------------------------

    def _head(self, call: Call, target: _Target) -> bytes:
        headers = call.headers
        lines = (
            self._default_lines
            if headers is self.default_headers
            else _header_lines(tuple((_text(k), _text(v)) for k, v in headers))
        )
        body = call.body
        length = f"Content-Length: {len(body)}\r\n".encode() if body is not None else b""
        if body is None and call.method in ("POST", "PUT", "PATCH"):
            length = b"Content-Length: 0\r\n"
        return b"".join((call.method.encode("ascii"), target.start, lines, length, b"\r\n"))

    async def asend(self, call: Call) -> Reply:
        pool = self._pools.get()
        timeouts = self.timeouts.capped(call.timeout)
        follow = bool(call.options.get("follow_redirects")) if call.options else False
        what = call.describe()
        for _ in range(_MAX_REDIRECTS + 1):
            target = self._target(call.url)
            request = self._head(call, target)
            if call.body:
                request += call.body
            response = await pool.send(
                target.origin,
                request,
                what=what,
                head_only=call.method == "HEAD",
                timeouts=timeouts,
            )
            reply = Reply(response.status, response.headers, b"", None, response.http_version)
            if follow and response.status in _REDIRECTS and (location := reply.header("location")):
                call = _redirected(call, response.status, urljoin(call.url, location))
                continue
            reply.body = _decode(response.body, reply.header("content-encoding"))
            return reply
        raise TransportError(f"{what}: more than {_MAX_REDIRECTS} redirects", service=self.service)

    async def aclose(self) -> None:
        """Close the pool of every loop that has one; later calls raise ClientStateError."""
        await self._pools.aclose()

    def __repr__(self) -> str:
        return f"Http1Transport(pools={len(self._pools)})"


def _redirected(call: Call, status: int, url: str) -> Call:
    """The call a redirect asks for: 303 (and 301/302 after a POST) becomes a GET without body;
    credentials do not follow to another host."""
    method, body = call.method, call.body
    headers: tuple[tuple[str, str], ...] = tuple(call.headers)
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        headers = tuple(
            h for h in headers if h[0].lower() not in ("content-type", "content-length")
        )
    if urlsplit(url).netloc != urlsplit(call.url).netloc:
        headers = tuple(h for h in headers if h[0].lower() != "authorization")
    return Call(method, url, headers, body, call.timeout, call.options, call.name)
