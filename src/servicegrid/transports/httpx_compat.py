"""httpx's request arguments in, ``httpx.Response`` out, over any HTTP transport.

The async HTTP client keeps httpx's interface (``client.post(path, json=...)``
returning an ``httpx.Response``) while sending through the fastest transport.
Building real ``httpx.Request``/``httpx.Response`` objects costs about 45 µs a
call, more than a whole HTTP round trip on loopback, so:

* :class:`RequestEncoder` encodes the common arguments (``json=``, ``content=``,
  ``headers=``) itself and asks httpx only for the rest (``params=``, ``data=``,
  ``files=``, ``cookies=``), so every argument means what it means to httpx;
* :class:`LazyResponse` *is* an ``httpx.Response`` whose headers and request
  are built the first time someone reads them.
"""

from __future__ import annotations

import datetime
import json as jsonlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, cast

import httpx

from servicegrid.transports.base import Call, Reply

__all__ = ["LazyResponse", "RequestEncoder", "as_httpx_response", "json_body"]

_FAST_ARGS: Final = frozenset({"json", "content", "headers", "timeout", "follow_redirects"})
_TRANSPORT_SET: Final = frozenset({b"host", b"content-length", b"transfer-encoding"})
_JSON_TYPE: Final = ("content-type", "application/json")
_NO_OPTIONS: Final[Mapping[str, Any]] = MappingProxyType({})
_FOLLOW: Final[Mapping[str, Any]] = MappingProxyType({"follow_redirects": True})


def json_body(value: Any) -> bytes:
    """``value`` as a compact UTF-8 JSON body, as httpx's ``json=`` sends it (no NaN)."""
    return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def _seconds(timeout: Any) -> float | None:
    """A per-request ``timeout=`` in seconds (an httpx.Timeout counts as its longest phase)."""
    if timeout is None or isinstance(timeout, int | float):
        return None if timeout is None else float(timeout)
    if isinstance(timeout, httpx.Timeout):
        phases = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
        return max(phases) if phases else None
    if isinstance(timeout, tuple):
        return _seconds(httpx.Timeout(*timeout))
    raise TypeError(f"timeout must be a number of seconds or an httpx.Timeout, got {timeout!r}")


class RequestEncoder:
    """Turn ``(method, path, **httpx_kwargs)`` into a :class:`Call` against ``base_url``.

    ``headers`` go with every request, under any given per request.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        defaults = {
            "accept": "*/*",
            "accept-encoding": "gzip, deflate",
            "user-agent": "servicegrid",
        }
        defaults.update({key.lower(): value for key, value in (headers or {}).items()})
        self.default_headers: tuple[tuple[str, str], ...] = tuple(defaults.items())
        self._json_headers = (
            *(h for h in self.default_headers if h[0] != "content-type"),
            _JSON_TYPE,
        )

    def url(self, path: str) -> str:
        """``path`` joined to the base URL; an absolute URL is taken as it is."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def encode(self, method: str, path: str, kwargs: Mapping[str, Any]) -> Call:
        url = self.url(path)
        name = f"{method} {path}"
        if not kwargs:  # the common case, kept short: the defaults, no body
            return Call(method, url, self.default_headers, None, None, _NO_OPTIONS, name)
        timeout = _seconds(kwargs.get("timeout"))
        options = _FOLLOW if kwargs.get("follow_redirects") else _NO_OPTIONS
        if not kwargs.keys() <= _FAST_ARGS:
            return self._encode_with_httpx(method, url, name, timeout, options, kwargs)
        given = kwargs.get("headers")
        headers = self.default_headers
        body: bytes | None = None
        if "json" in kwargs:
            body = json_body(kwargs["json"])
            headers = self._json_headers
        elif kwargs.get("content") is not None:
            content = kwargs["content"]
            body = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if given:
            merged = dict(headers)
            merged.update({_text(k).lower(): _text(v) for k, v in dict(given).items()})
            headers = tuple(merged.items())
        return Call(method, url, headers, body, timeout, options, name)

    def _encode_with_httpx(
        self,
        method: str,
        url: str,
        name: str,
        timeout: float | None,
        options: Mapping[str, Any],
        kwargs: Mapping[str, Any],
    ) -> Call:
        args = {k: v for k, v in kwargs.items() if k not in ("timeout", "follow_redirects")}
        auth = args.pop("auth", None)
        args.pop("extensions", None)
        given = args.pop("headers", None)
        headers = httpx.Headers(dict(self.default_headers))
        if given:
            headers.update(given)
        request = httpx.Request(method, url, headers=headers, **args)
        if auth is not None:
            request = _authorised(request, auth)
        request.read()
        pairs = tuple(
            (key.decode("latin-1"), value.decode("latin-1"))
            for key, value in request.headers.raw
            if key.lower() not in _TRANSPORT_SET
        )
        body = request.content or None
        return Call(method, str(request.url), pairs, body, timeout, options, name)


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _authorised(request: httpx.Request, auth: Any) -> httpx.Request:
    """``request`` with ``auth`` applied: a (user, password) pair or an httpx.Auth whose first
    step needs no answer (basic, bearer headers). Challenge-response schemes need the httpx
    transport, which runs the whole flow."""
    flow_auth = httpx.BasicAuth(*auth) if isinstance(auth, tuple) else auth
    if not isinstance(flow_auth, httpx.Auth):
        raise TypeError(f"auth must be a (user, password) pair or an httpx.Auth, got {auth!r}")
    return next(flow_auth.sync_auth_flow(request))


class LazyResponse(httpx.Response):
    """An ``httpx.Response`` for a transport's :class:`Reply`, with the body already read.

    ``httpx.Response.__init__`` is skipped on purpose: it would build the header
    table and a request nobody may look at. Both are made on first access, from
    what was sent and received, so every attribute reads as httpx's would.
    """

    # what every such response has from the start: read, closed, redirected by nobody
    _request: httpx.Request | None = None
    next_request = None
    is_closed = True
    is_stream_consumed = True
    default_encoding = "utf-8"

    def __init__(self, call: Call, reply: Reply, elapsed: float = 0.0) -> None:
        self.status_code = reply.status
        self._content = reply.content
        self._reply = reply
        self._call = call
        self._elapsed_seconds = elapsed

    def __getattr__(self, name: str) -> Any:
        """Build, once, what ``httpx.Response.__init__`` would have set and nobody read yet."""
        value: Any
        if name == "extensions":
            value = {"http_version": self._reply.http_version.encode("ascii")}
        elif name == "history":
            value = []
        elif name == "stream":
            value = httpx.ByteStream(self._content)
        elif name == "_num_bytes_downloaded":
            value = len(self._content)
        elif name == "_elapsed":
            value = datetime.timedelta(seconds=self._elapsed_seconds)
        else:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.__dict__[name] = value
        return value

    @property
    def headers(self) -> httpx.Headers:
        cached = self.__dict__.get("_headers")
        if cached is None:
            raw = self._reply.headers
            cached = httpx.Headers(dict(raw) if isinstance(raw, Mapping) else cast(Any, raw))
            self.__dict__["_headers"] = cached
        return cast(httpx.Headers, cached)

    @headers.setter
    def headers(self, value: httpx.Headers) -> None:
        self.__dict__["_headers"] = httpx.Headers(value)

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            call = self._call
            self._request = httpx.Request(
                call.method, call.url, headers=list(call.headers), content=call.body
            )
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


def as_httpx_response(call: Call, reply: Reply, elapsed: float = 0.0) -> httpx.Response:
    """The ``httpx.Response`` for ``reply``: the transport's own when it made one."""
    if isinstance(reply.raw, httpx.Response):
        return reply.raw
    return LazyResponse(call, reply, elapsed)
