"""HTTP status and exception translation, shared by every HTTP transport and client.

One place decides which answers are failures (through :mod:`servicegrid.errors`:
:func:`should_raise`, :class:`StatusCheck`) and how httpx's and requests'
the network exceptions map into the servicegrid tree (``map_*_errors``).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import requests
import urllib3

from servicegrid._validate import check_count, check_number
from servicegrid.errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    DeadlineExceeded,
    ReadTimeout,
    ServiceError,
    TransportError,
    error_for_http_status,
)
from servicegrid.transports.base import Call, Reply

__all__ = [
    "PhaseTimeouts",
    "PoolLimits",
    "StatusCheck",
    "error_for_reply",
    "error_for_response",
    "map_httpx_errors",
    "map_requests_errors",
    "parse_retry_after",
    "should_raise",
]

_BODY_PREVIEW = 500


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """Connection pool limits of an HTTP transport; ``keepalive_expiry`` in seconds.

    Zero keep-alive connections or a zero expiry means no connection is reused.
    """

    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 5.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_count(f"{owner}.max_connections", self.max_connections)
        check_count(f"{owner}.max_keepalive_connections", self.max_keepalive_connections, minimum=0)
        check_number(f"{owner}.keepalive_expiry", self.keepalive_expiry)

    def as_httpx(self) -> httpx.Limits:
        """These limits as httpx's."""
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )


@dataclass(frozen=True, slots=True)
class PhaseTimeouts:
    """Seconds each phase of one HTTP attempt may take (seed 004's connect/read/write/pool)."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 10.0
    pool: float = 5.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for phase in ("connect", "read", "write", "pool"):
            check_number(f"{owner}.{phase}", getattr(self, phase), inclusive=False)

    def capped(self, cap: float | None) -> PhaseTimeouts:
        """Every phase at most ``cap`` seconds (no cap: these phases)."""
        if cap is None:
            return self
        cap = max(cap, 0.001)
        return PhaseTimeouts(
            min(self.connect, cap), min(self.read, cap), min(self.write, cap), min(self.pool, cap)
        )

    def as_httpx(self) -> httpx.Timeout:
        """These phases as httpx's timeout."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def should_raise(status: int, *, client_errors: bool) -> bool:
    """Whether an answer with ``status`` becomes an exception.

    Retryable statuses (5xx, 408, 429, per the error table) always do, so retry
    and breaker see them; other 4xx only when ``client_errors`` is set.
    """
    if status < 400:
        return False
    return client_errors or error_for_http_status(status).retryable


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: str,
    *,
    method: str,
    url: str,
    service: str | None,
) -> ServiceError:
    """The servicegrid error for an HTTP error answer, with its context in ``details``."""
    preview = body[:_BODY_PREVIEW]
    return error_for_http_status(
        status,
        f"{method} {url} answered HTTP {status}" + (f": {preview}" if preview else ""),
        service=service,
        retry_after=parse_retry_after(headers.get("retry-after")),
        details={"status_code": status, "method": method, "url": url, "body": preview},
    )


def error_for_reply(call: Call, reply: Reply, *, service: str | None) -> ServiceError:
    """The servicegrid error for an HTTP error reply to ``call``."""
    retry_after = reply.header("retry-after")
    return error_for_response(
        reply.status,
        {"retry-after": retry_after} if retry_after is not None else {},
        reply.text,
        method=call.method,
        url=call.url,
        service=service,
    )


class StatusCheck:
    """A reply check: raise for error statuses, retryable ones (5xx, 408, 429) always, other
    4xx only when ``client_errors`` is set (seed 004 raises them, seed 001 returns them)."""

    __slots__ = ("client_errors", "service")

    def __init__(self, *, client_errors: bool, service: str | None = None) -> None:
        self.client_errors = client_errors
        self.service = service

    def __call__(self, call: Call, reply: Reply) -> None:
        status = reply.status
        if (
            isinstance(status, int)
            and status >= 400
            and should_raise(status, client_errors=self.client_errors)
        ):
            raise error_for_reply(call, reply, service=self.service)


@contextmanager
def map_httpx_errors(service: str | None, what: str) -> Iterator[None]:
    """Re-raise httpx transport exceptions as servicegrid errors, ``from`` the original."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise ConnectTimeout(f"{what}: timed out connecting", service=service) from exc
    except httpx.PoolTimeout as exc:
        raise ConnectTimeout(f"{what}: no free connection in the pool", service=service) from exc
    except httpx.TimeoutException as exc:
        raise ReadTimeout(f"{what}: timed out ({type(exc).__name__})", service=service) from exc
    except httpx.ConnectError as exc:
        raise ConnectError(f"{what}: connection failed: {exc}", service=service) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise ConnectionLost(f"{what}: connection lost: {exc}", service=service) from exc
    except httpx.TransportError as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}", service=service) from exc
    except httpx.HTTPError as exc:  # TooManyRedirects, DecodingError: no usable answer either
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}", service=service) from exc


@contextmanager
def map_requests_errors(service: str | None, what: str) -> Iterator[None]:
    """Re-raise requests (and socket) exceptions as servicegrid errors, ``from`` the original."""
    try:
        yield
    except requests.ConnectTimeout as exc:
        raise ConnectTimeout(f"{what}: timed out connecting", service=service) from exc
    except requests.Timeout as exc:
        raise ReadTimeout(f"{what}: timed out waiting for the answer", service=service) from exc
    except requests.ConnectionError as exc:
        cause: Any = exc.args[0] if exc.args else None
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
            raise ReadTimeout(f"{what}: timed out reading the answer", service=service) from exc
        if isinstance(cause, urllib3.exceptions.ProtocolError):
            raise ConnectionLost(f"{what}: connection lost: {cause}", service=service) from exc
        raise ConnectError(f"{what}: connection failed: {exc}", service=service) from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise ConnectionLost(f"{what}: connection lost mid-body: {exc}", service=service) from exc
    except TimeoutError as exc:
        raise DeadlineExceeded(f"{what}: timed out", service=service) from exc
    except ConnectionError as exc:
        raise ConnectError(f"{what}: connection failed: {exc}", service=service) from exc
