"""HTTP status and exception translation, shared by the sync and async HTTP clients.

One place decides which answers are failures worth retrying (through
:mod:`servicegrid.errors`) and how httpx's and requests' exceptions map into
the servicegrid tree (``map_httpx_errors``, ``map_requests_errors``).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import requests
import urllib3

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

__all__ = [
    "error_for_response",
    "map_httpx_errors",
    "map_requests_errors",
    "parse_retry_after",
    "should_raise",
]

_BODY_PREVIEW = 500


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
