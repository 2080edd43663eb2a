"""``ResilientTransport(inner, pipeline)``: a transport that sends through the resilience pipeline.

It is itself a transport, so resilience wraps HTTP and gRPC alike. Each attempt:

1. takes the call's timeout, capped at what is left of the deadline in force
   (:func:`attempt_timeout`, the one place this is done);
2. sends through ``inner``, whose errors are already servicegrid errors;
3. hands the reply to ``check``, which raises for an answer that is a failure
   (an HTTP 503, say), so that retry and breaker see it.

A call whose deadline has already passed fails with ``DeadlineExceeded``
before anything is sent, and the breaker does not count it: it says nothing
about the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ClientStateError, DeadlineExceeded
from servicegrid.resilience.deadline import remaining
from servicegrid.resilience.pipeline import Pipeline
from servicegrid.transports.base import AsyncTransport, Call, Reply, Transport

__all__ = ["Check", "ResilientTransport", "attempt_timeout"]

Check = Callable[[Call, Reply], None]
"""Raises the servicegrid error for a reply that is a failure; returns for a good one."""


def attempt_timeout(requested: float | None, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds one attempt may take: ``requested``, capped at the time left before the deadline.

    None when neither bounds it. Raises :class:`DeadlineExceeded` when the deadline has passed.
    """
    left = remaining(clock)
    if left is None:
        return requested
    if left <= 0:
        raise DeadlineExceeded("the call's deadline passed before the attempt")
    return left if requested is None or left < requested else requested


class ResilientTransport:
    """Send every call through ``pipeline`` and ``inner``; see the module docstring.

    ``check`` is the default reply check (None: every reply is an answer); a call
    may bring its own. ``name`` labels errors raised here.
    """

    def __init__(
        self,
        inner: Transport | AsyncTransport,
        pipeline: Pipeline,
        *,
        check: Check | None = None,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.inner = inner
        self.pipeline = pipeline
        self.check = check
        self.name = name
        self._clock = clock
        self._send: Callable[[Call], Reply] | None = getattr(inner, "send", None)
        self._asend: Callable[[Call], Awaitable[Reply]] | None = getattr(inner, "asend", None)

    def _refuse_if_expired(self, call: Call) -> None:
        left = remaining(self._clock)
        if left is not None and left <= 0:
            raise DeadlineExceeded(
                f"{call.describe()}: the deadline passed before the call",
                service=self.name or None,
            )

    def _capped(self, call: Call) -> Call:
        try:
            timeout = attempt_timeout(call.timeout, self._clock)
        except DeadlineExceeded as error:
            raise DeadlineExceeded(
                f"{call.describe()}: {error.message}", service=self.name or None
            ) from None
        return call if timeout is call.timeout else call.with_timeout(timeout)

    # ---- sync --------------------------------------------------------------------------

    def send(self, call: Call, *, check: Check | None = None) -> Reply:
        """Send ``call`` from this thread through the pipeline; raises a ServiceError."""
        self._refuse_if_expired(call)
        return self.pipeline.call(self._attempt, call, check or self.check)

    def _attempt(self, call: Call, check: Check | None) -> Reply:
        send = self._send
        if send is None:
            raise ClientStateError(
                f"{type(self.inner).__name__} sends only from event loops; await the async client"
            )
        reply = send(self._capped(call))
        if check is not None:
            check(call, reply)
        return reply

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    # ---- async -------------------------------------------------------------------------

    def asend(self, call: Call, *, check: Check | None = None) -> Awaitable[Reply]:
        """Send ``call`` from this event loop through the pipeline: ``await transport.asend(call)``.

        Raises a ServiceError; one whose deadline has already passed at once, sending nothing.
        """
        self._refuse_if_expired(call)
        return self.pipeline.acall(self._aattempt, call, check or self.check)

    async def _aattempt(self, call: Call, check: Check | None) -> Reply:
        asend = self._asend
        if asend is None:
            raise ClientStateError(
                f"{type(self.inner).__name__} sends only from threads; use the sync client"
            )
        reply = await asend(self._capped(call))
        if check is not None:
            check(call, reply)
        return reply

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if callable(aclose):
            await aclose()

    def __repr__(self) -> str:
        return f"ResilientTransport({self.inner!r}, {self.pipeline!r})"
