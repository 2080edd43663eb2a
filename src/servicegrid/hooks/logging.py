"""Resilience events as log lines, in the words of seed 001.

.. code-block:: text

    [Chroma Server] Connection failed on attempt 1/3, retrying in 1s...
    [Chroma Server] Circuit breaker OPEN (threshold reached)
    [Chroma Server] Circuit breaker CLOSED (service recovered)
"""

from __future__ import annotations

import logging

from servicegrid.errors import DeadlineExceeded, ServiceError, TransportError
from servicegrid.resilience.events import (
    BreakerTransitioned,
    CallRejected,
    Event,
    FaultInjected,
    RetryGaveUp,
    RetryScheduled,
)

__all__ = ["LoggingHook", "describe_failure"]

_DEFAULT_LOGGER = logging.getLogger("servicegrid.clients")


def describe_failure(error: BaseException) -> str:
    """What went wrong, briefly: ``Connection failed``, ``Request timed out``, ``HTTP 503``."""
    if isinstance(error, ServiceError) and "status_code" in error.details:
        return f"HTTP {error.details['status_code']}"
    if isinstance(error, DeadlineExceeded):
        return "Request timed out"
    if isinstance(error, TransportError):
        return "Connection failed"
    return type(error).__name__


class LoggingHook:
    """Log each event as ``[label] message``; ``label`` defaults to the event's name."""

    def __init__(self, label: str | None = None, logger: logging.Logger | None = None) -> None:
        self.label = label
        self.logger = logger or _DEFAULT_LOGGER

    def __call__(self, event: Event) -> None:
        label = self.label or event.name
        log = self.logger
        match event:
            case RetryScheduled(attempt=attempt, max_attempts=limit, delay=delay, error=error):
                log.warning(
                    "[%s] %s on attempt %d/%d, retrying in %gs...",
                    label,
                    describe_failure(error),
                    attempt,
                    limit,
                    round(delay, 3),
                )
            case RetryGaveUp(attempt=attempt, reason=reason, error=error) if (
                reason != "not_retryable"
            ):
                log.error(
                    "[%s] %s on attempt %d, giving up (%s)",
                    label,
                    describe_failure(error),
                    attempt,
                    reason,
                )
            case BreakerTransitioned(new="open", reason=reason):
                log.error("[%s] Circuit breaker OPEN (%s)", label, reason)
            case BreakerTransitioned(new="closed", reason=reason):
                log.info("[%s] Circuit breaker CLOSED (%s)", label, reason)
            case BreakerTransitioned(new="half_open"):
                log.info("[%s] Circuit breaker HALF_OPEN (testing recovery)", label)
            case BreakerTransitioned(new=new, reason=reason):
                log.warning("[%s] Circuit breaker %s (%s)", label, new.upper(), reason)
            case CallRejected(policy=policy, reason=reason):
                log.debug("[%s] call rejected by %s: %s", label, policy, reason)
            case FaultInjected(kind=kind, delay=delay):
                log.debug("[%s] injected %s (%gs)", label, kind, delay)
            case _:
                pass
