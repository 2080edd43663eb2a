"""Frozen events that policies emit, and the hook type that receives them.

The core imports no logging or metrics library: it hands events to any
callable matching :data:`Hook`. ``servicegrid.hooks`` has ready-made ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "BreakerTransitioned",
    "CallRejected",
    "CallSucceeded",
    "Event",
    "FaultInjected",
    "Hook",
    "RetryGaveUp",
    "RetryScheduled",
    "emit",
]

_log = logging.getLogger("servicegrid.resilience")


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Attempt ``attempt`` of ``max_attempts`` failed; the next one starts after ``delay`` s."""

    name: str
    attempt: int
    max_attempts: int
    delay: float
    error: BaseException


@dataclass(frozen=True, slots=True)
class RetryGaveUp:
    """No further attempt; ``reason`` is one of ``Retry.plan``'s (see GiveUp)."""

    name: str
    attempt: int
    max_attempts: int
    reason: str
    error: BaseException


@dataclass(frozen=True, slots=True)
class CallSucceeded:
    """A call finished well after ``attempt`` attempts and ``duration`` seconds in all."""

    name: str
    attempt: int
    duration: float


@dataclass(frozen=True, slots=True)
class BreakerTransitioned:
    """The breaker ``name`` moved from ``old`` to ``new`` (state values) because of ``reason``."""

    name: str
    old: str
    new: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class CallRejected:
    """A policy refused the call before it ran; ``policy`` is ``breaker``, ``rate_limit``, ..."""

    name: str
    policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class FaultInjected:
    """Fault injection failed or delayed this call on purpose."""

    name: str
    kind: str
    delay: float


Event = (
    RetryScheduled
    | RetryGaveUp
    | CallSucceeded
    | BreakerTransitioned
    | CallRejected
    | FaultInjected
)
Hook = Callable[[Event], None]


def emit(hooks: Iterable[Hook], event: Event) -> None:
    """Hand ``event`` to every hook; a failing hook is logged and never breaks the call."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            _log.exception("resilience hook %r failed on %r", hook, event)
