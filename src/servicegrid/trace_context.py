"""What travels with every call between services: request id, tenant, W3C traceparent.

Clients write these headers (``servicegrid.transports.grpc.call_metadata``) and
servers read them (``servicegrid.runtime.context``); both take the names and
the rules from here, so the two ends cannot drift apart.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Final

__all__ = [
    "REQUEST_ID_KEY",
    "TENANT_KEY",
    "TRACEPARENT_KEY",
    "is_valid_traceparent",
    "new_request_id",
    "new_traceparent",
]

REQUEST_ID_KEY: Final = "x-request-id"
TRACEPARENT_KEY: Final = "traceparent"
TENANT_KEY: Final = "x-tenant-id"

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
# W3C Trace Context: version-traceid-parentid-flags; later versions may append fields.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def new_request_id() -> str:
    """A fresh request id: 32 hex digits (uuid4)."""
    return uuid.uuid4().hex


def new_traceparent(trace_id: str | None = None) -> str:
    """A W3C traceparent (version 00, sampled) with a new span id.

    ``trace_id`` is kept when it is a valid trace id (32 lower-case hex digits,
    not all zeros), so a request id of that shape joins logs and traces; else a
    new one is drawn.
    """
    if trace_id is None or not _TRACE_ID.fullmatch(trace_id) or trace_id == _ZERO_TRACE:
        trace_id = secrets.token_hex(16)
    span_id = secrets.token_hex(8)
    while span_id == _ZERO_SPAN:  # pragma: no cover - one chance in 2**64
        span_id = secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01"


def is_valid_traceparent(value: str) -> bool:
    """True for a well-formed W3C traceparent (lower-case hex, non-zero ids, version != ff)."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match["version"] == "ff":
        return False
    if match["version"] == "00" and match["rest"] is not None:
        return False
    return match["trace"] != _ZERO_TRACE and match["parent"] != _ZERO_SPAN
