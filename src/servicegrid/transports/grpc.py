"""gRPC channels, call metadata and status translation, shared by every gRPC client.

The twin of :mod:`servicegrid.transports.http`: :func:`map_grpc_errors` turns a
``grpc.RpcError`` into the servicegrid error for its status code (through
:func:`servicegrid.errors.error_for_grpc_code`), :func:`as_rpc_error` makes a
servicegrid error a ``grpc.RpcError`` too (seed 000 counts those in a breaker),
:func:`create_channel` opens a ``grpc.aio`` channel with servicegrid's defaults,
and :func:`call_metadata` builds the headers every call carries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, cast

import grpc
import grpc.aio

from servicegrid.errors import ServiceError, error_for_grpc_code
from servicegrid.trace_context import (
    REQUEST_ID_KEY,
    TENANT_KEY,
    TRACEPARENT_KEY,
    new_request_id,
    new_traceparent,
)
from servicegrid.transports._twins import as_twin, twin_class
from servicegrid.transports.http import parse_retry_after

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "ChannelOption",
    "RpcDetails",
    "as_rpc_error",
    "call_metadata",
    "channel_credentials",
    "channel_options",
    "check_metadata_value",
    "create_channel",
    "error_from_rpc",
    "map_grpc_errors",
]

ChannelOption = tuple[str, str | int]
"""One ``grpc.*`` channel argument, as ``grpc.aio.insecure_channel(options=...)`` takes it."""

_MiB: Final = 1024 * 1024

DEFAULT_CHANNEL_OPTIONS: Final[tuple[ChannelOption, ...]] = (
    # Batches of embeddings and long documents go well past gRPC's 4 MiB default.
    ("grpc.max_send_message_length", 64 * _MiB),
    ("grpc.max_receive_message_length", 64 * _MiB),
    # Notice a dead peer within ~80 s; only while calls are active, and no more often
    # than servers accept by default (they answer faster pings with GOAWAY).
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # Reconnect within 10 s of a restarted server, well inside a breaker's cool-down.
    ("grpc.initial_reconnect_backoff_ms", 1_000),
    ("grpc.max_reconnect_backoff_ms", 10_000),
    # Retries belong to the resilience pipeline alone, so attempts are counted once.
    ("grpc.enable_retries", 0),
)

_RETRY_AFTER: Final = "retry-after"
_PUSHBACK_MS: Final = "grpc-retry-pushback-ms"
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")


# ---- errors ------------------------------------------------------------------------


def _trailer(exc: grpc.RpcError, key: str) -> str | None:
    """The first trailing-metadata value under ``key``, decoded, or None."""
    read = getattr(exc, "trailing_metadata", None)
    if not callable(read):
        return None
    try:
        items: Iterable[Any] = read() or ()
    except Exception:  # a call object that never got its trailers
        return None
    for item in items:
        name, value = (item.key, item.value) if hasattr(item, "key") else (item[0], item[1])
        if str(name).lower() == key:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


def _retry_after(exc: grpc.RpcError) -> float | None:
    """Seconds from a ``retry-after`` trailer, else from gRPC's own ``grpc-retry-pushback-ms``."""
    seconds = parse_retry_after(_trailer(exc, _RETRY_AFTER))
    if seconds is not None:
        return seconds
    pushback = _trailer(exc, _PUSHBACK_MS)
    if pushback is not None and pushback.strip().isdigit():
        return int(pushback) / 1000.0
    return None


def error_from_rpc(exc: grpc.RpcError, *, service: str | None, what: str) -> ServiceError:
    """The servicegrid error for a failed RPC: its class from the status code, its message the
    server's details, ``retry_after`` from the trailers, and the code and call in ``details``."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    code_name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    message = exc.details() if callable(getattr(exc, "details", None)) else None
    details: dict[str, Any] = {"grpc_code": code_name, "method": what}
    debug = getattr(exc, "debug_error_string", None)
    if callable(debug) and (text := debug()):
        details["debug_error_string"] = text
    return error_for_grpc_code(
        code_name,
        message or "",
        service=service,
        details=details,
        retry_after=_retry_after(exc),
    )


def _code(self: ServiceError) -> grpc.StatusCode:
    name = self.details.get("grpc_code") or self.grpc_code
    return grpc.StatusCode[name] if name in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN


def _no_metadata(self: ServiceError) -> tuple[tuple[str, str], ...]:
    return ()


_RPC_ERROR_METHODS: Final[dict[str, Any]] = {
    "code": _code,
    "initial_metadata": _no_metadata,
    "trailing_metadata": _no_metadata,
}


class RpcDetails(dict[str, Any]):
    """A servicegrid error's ``details`` dict that, called, is ``grpc.RpcError.details()``:
    ``error.details["grpc_code"]`` and ``error.details()`` (the message) both work."""

    def __init__(self, details: dict[str, Any], message: str) -> None:
        super().__init__(details)
        self.message = message

    def __call__(self) -> str:
        return self.message


def as_rpc_error(error: ServiceError) -> ServiceError:
    """``error`` as an instance that is also a ``grpc.RpcError``, with ``code()`` (the status
    it came with, else its class's code from the error table) and ``details()`` (its message)."""
    if isinstance(cast(object, error), grpc.RpcError):
        return error
    twin_cls = twin_class(type(error), grpc.RpcError, _RPC_ERROR_METHODS)
    return as_twin(error, twin_cls, details=RpcDetails(error.details, error.message))


@contextmanager
def map_grpc_errors(service: str | None, what: str) -> Iterator[None]:
    """Re-raise ``grpc.RpcError`` (``grpc.aio.AioRpcError`` included) as the servicegrid error
    for its status code, ``from`` the original; ``what`` names the call (``Service/Method``)."""
    try:
        yield
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, service=service, what=what) from exc


# ---- channels ----------------------------------------------------------------------


def _read(path: str, name: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from exc


def channel_credentials(
    *, cert_path: str | None = None, key_path: str | None = None, ca_path: str | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials from PEM files: ``ca_path`` to trust (default: the system roots),
    ``cert_path`` + ``key_path`` for mutual TLS. Raises ValueError for an unreadable file or
    a certificate without its key (or the reverse)."""
    if (cert_path is None) != (key_path is None):
        raise ValueError("mutual TLS needs both cert_path and key_path, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_path, "ca_path") if ca_path else None,
        private_key=_read(key_path, "key_path") if key_path else None,
        certificate_chain=_read(cert_path, "cert_path") if cert_path else None,
    )


def channel_options(options: Iterable[ChannelOption] = ()) -> list[ChannelOption]:
    """:data:`DEFAULT_CHANNEL_OPTIONS` with ``options`` layered on top, key by key."""
    merged = dict(DEFAULT_CHANNEL_OPTIONS)
    merged.update(options)
    return list(merged.items())


def create_channel(
    target: str,
    *,
    tls: bool = False,
    cert_path: str | None = None,
    key_path: str | None = None,
    ca_path: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[ChannelOption] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` (``host:port`` or any gRPC target URI).

    With ``tls`` (or ready-made ``credentials``) the channel is secure: it trusts
    ``ca_path`` and, given ``cert_path`` and ``key_path``, presents a client
    certificate (mutual TLS). Otherwise it is plaintext. ``options`` override
    :data:`DEFAULT_CHANNEL_OPTIONS` by key. Call it inside the event loop that will use it.
    """
    merged = channel_options(options)
    if credentials is None and tls:
        credentials = channel_credentials(cert_path=cert_path, key_path=key_path, ca_path=ca_path)
    elif credentials is None and (cert_path or key_path or ca_path):
        raise ValueError("certificate paths were given but tls is False")
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=merged)
    return grpc.aio.insecure_channel(target, options=merged)


# ---- metadata ----------------------------------------------------------------------


def check_metadata_value(name: str, value: object) -> str:
    """``value`` if it can travel as an ASCII gRPC header value; ValueError naming ``name``."""
    if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
        raise ValueError(
            f"{name} must be a non-empty string of printable ASCII characters, got {value!r}"
        )
    return value


def call_metadata(
    tenant_id: str | None = None, correlation_id: str | None = None
) -> tuple[tuple[str, str], ...]:
    """The metadata one call carries: ``x-request-id``, ``x-tenant-id`` and a W3C ``traceparent``.

    ``x-request-id`` is ``correlation_id`` or a new uuid4 hex. The trace id is the
    request id when that is already 32 lowercase hex digits (so logs and traces
    join up), else a new random one; every call gets its own span id.
    """
    request_id = (
        new_request_id()
        if correlation_id is None
        else check_metadata_value("correlation_id", correlation_id)
    )
    metadata = [(REQUEST_ID_KEY, request_id)]
    if tenant_id is not None:
        metadata.append((TENANT_KEY, check_metadata_value("tenant_id", tenant_id)))
    metadata.append((TRACEPARENT_KEY, new_traceparent(trace_id=request_id)))
    return tuple(metadata)
