"""Per-caller rate limits and the request body cap, as ASGI middleware.

A caller is its API key, or its address when the gateway runs open. Each has a
:class:`~servicegrid.resilience.ratelimit.TokenBucket` that fails fast; a
refusal is 429 with ``Retry-After``. Bodies over the cap are 413, whether the
``Content-Length`` says so or the streamed bytes do.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from servicegrid import http_limits
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import RateLimited
from servicegrid.gateway.auth import OPEN_PATHS, bearer_token
from servicegrid.gateway.errors import problem_response, service_error_response
from servicegrid.resilience.ratelimit import TokenBucket

__all__ = ["BodyLimitMiddleware", "RateLimitMiddleware", "caller_of"]

MAX_CALLERS = 10_000
"""Buckets kept at most; the least recently seen callers are forgotten first."""


def caller_of(scope: Scope) -> str:
    """``key:<digest>`` for a bearer token, else ``addr:<client host>``."""
    token = bearer_token(scope)
    if token is not None:
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """``rate`` requests per second per caller, bursts up to ``burst``; None: no limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float | None,
        burst: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst if burst is not None else max(1, round(rate or 1))
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, caller: str) -> TokenBucket:
        bucket = self._buckets.get(caller)
        if bucket is None:
            assert self.rate is not None
            bucket = TokenBucket(
                self.rate, self.burst, mode="fail", name="gateway", clock=self._clock
            )
            self._buckets[caller] = bucket
            if len(self._buckets) > MAX_CALLERS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
        return bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.rate is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            self._bucket(caller_of(scope)).acquire()
        except RateLimited as error:
            error.message = "Rate limit reached for this API key; retry after the Retry-After delay"
            await service_error_response(scope["path"], error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware(http_limits.BodyLimitMiddleware):
    """413 in the gateway's problem format for a request body over ``max_bytes``.

    ``per_path`` gives other limits to paths starting with a prefix (document uploads).
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(app, max_bytes=max_bytes, refuse=_too_large, per_path=per_path)


def _too_large(path: str, limit: int) -> ASGIApp:
    mib = limit / (1024 * 1024)
    return problem_response(
        path,
        413,
        f"request body is larger than the gateway's limit of {mib:g} MiB",
        code="request_too_large",
    )
