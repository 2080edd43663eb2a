"""The deadline of the current call, carried in a context variable.

Timeout and retry set it; transports read :func:`remaining` and pass it on as
the gRPC ``timeout=`` or the HTTP read timeout, so no layer waits past the
caller's budget. Deadlines are absolute ``clock.now()`` values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from servicegrid.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "current_deadline",
    "deadline_scope",
    "earliest",
    "enter_deadline",
    "exit_deadline",
    "remaining",
]

_deadline: ContextVar[float | None] = ContextVar("servicegrid_deadline", default=None)


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of ``deadlines`` that are set; None when none is."""
    return min((d for d in deadlines if d is not None), default=None)


def current_deadline() -> float | None:
    """The absolute deadline of the current call, or None when unbounded."""
    return _deadline.get()


def remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left before the current deadline (may be negative), or None when unbounded."""
    at = _deadline.get()
    return None if at is None else at - clock.now()


@contextmanager
def deadline_scope(at: float | None) -> Iterator[float | None]:
    """Bound the enclosed code by ``at``; an earlier deadline already in force wins."""
    outer = _deadline.get()
    effective = earliest(outer, at)
    token = _deadline.set(effective)
    try:
        yield effective
    finally:
        _deadline.reset(token)


def enter_deadline(at: float | None) -> Token[float | None] | None:
    """Like :func:`deadline_scope` without a context manager, for hot paths; pair with exit."""
    if at is None:
        return None
    outer = _deadline.get()
    return _deadline.set(earliest(outer, at))


def exit_deadline(token: Token[float | None] | None) -> None:
    """Undo :func:`enter_deadline`."""
    if token is not None:
        _deadline.reset(token)
