"""Request-scoped values carried in context variables for the duration of one RPC.

:class:`~servicegrid.runtime.interceptors.RequestContextInterceptor` reads them
from the call's metadata; code below the servicer reads them through
:func:`current_request_id`, :func:`current_traceparent` and :func:`current_tenant`
(each is None outside a call).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from servicegrid.trace_context import (
    REQUEST_ID_KEY,
    TENANT_KEY,
    TRACEPARENT_KEY,
    is_valid_traceparent,
    new_request_id,
    new_traceparent,
)

__all__ = [
    "REQUEST_ID_KEY",
    "TENANT_KEY",
    "TRACEPARENT_KEY",
    "RequestContext",
    "current_request_id",
    "current_tenant",
    "current_traceparent",
    "get_request_id",
    "is_valid_traceparent",
    "new_request_id",
    "new_traceparent",
    "request_scope",
]

# A caller's request id is kept only when it is short and printable, so it is safe in logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_MAX_TENANT = 256

_request_id: ContextVar[str | None] = ContextVar("servicegrid_request_id", default=None)
_traceparent: ContextVar[str | None] = ContextVar("servicegrid_traceparent", default=None)
_tenant: ContextVar[str | None] = ContextVar("servicegrid_tenant", default=None)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What one call carries: its request id, W3C traceparent and tenant (None if not sent)."""

    request_id: str
    traceparent: str
    tenant_id: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> RequestContext:
        """Read gRPC metadata; a missing or malformed request id or traceparent is generated."""
        values: dict[str, str] = {}
        for key, value in metadata or ():
            if isinstance(value, str) and key.lower() not in values:
                values[key.lower()] = value.strip()
        request_id = values.get(REQUEST_ID_KEY, "")
        traceparent = values.get(TRACEPARENT_KEY, "").lower()
        tenant = values.get(TENANT_KEY, "")[:_MAX_TENANT]
        return cls(
            request_id=request_id if _REQUEST_ID.fullmatch(request_id) else new_request_id(),
            traceparent=traceparent if is_valid_traceparent(traceparent) else new_traceparent(),
            tenant_id=tenant or None,
        )


@contextmanager
def request_scope(ctx: RequestContext) -> Iterator[RequestContext]:
    """Make ``ctx`` current for the enclosed code, restoring the previous values after."""
    tokens = (
        _request_id.set(ctx.request_id),
        _traceparent.set(ctx.traceparent),
        _tenant.set(ctx.tenant_id),
    )
    try:
        yield ctx
    finally:
        _tenant.reset(tokens[2])
        _traceparent.reset(tokens[1])
        _request_id.reset(tokens[0])


def current_request_id() -> str | None:
    """The request id of the current call, or None outside a call."""
    return _request_id.get()


def current_traceparent() -> str | None:
    """The W3C traceparent of the current call, or None outside a call."""
    return _traceparent.get()


def current_tenant() -> str | None:
    """The tenant (``x-tenant-id``) of the current call, or None when not sent."""
    return _tenant.get()


def get_request_id() -> str:
    """The request id of the call being served, or a new one outside a call (seed 003)."""
    return current_request_id() or new_request_id()
