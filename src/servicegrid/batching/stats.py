"""What a batching engine reports: a frozen snapshot, and the goodput window behind it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from servicegrid._validate import check_number

__all__ = ["GOODPUT_WINDOW", "EngineStats", "RateWindow"]

GOODPUT_WINDOW = 60.0
"""Seconds over which :attr:`EngineStats.goodput` is averaged."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of one engine; counts are items unless they say requests or batches."""

    queued: int
    """Items waiting for a batch."""
    in_flight_batches: int
    """Batches formed and not yet answered."""
    total_items: int
    """Items sent on in a formed batch."""
    total_batches: int
    average_batch_size: float
    """``total_items / total_batches`` (0.0 before the first batch)."""
    rejected: int
    """Requests refused with ResourceExhausted because the queue was full (items or tokens)."""
    expired: int
    """Items that ended with DeadlineExceeded."""
    failed_batches: int
    """Batches failed by an exception in preprocess, forward or postprocess."""
    queued_tokens: int = 0
    """Tokens of the items waiting: what bounds the queue's memory."""
    queued_requests: int = 0
    """Requests with items still waiting."""
    refused_late: int = 0
    """Requests refused with ResourceExhausted because they could not finish by their deadline."""
    completed_items: int = 0
    """Items in successful answers."""
    goodput: float = 0.0
    """Items in successful answers per second, over the last :data:`GOODPUT_WINDOW` seconds."""
    backlog_seconds: float = 0.0
    """Estimated seconds until the engine has done the work formed and waiting."""


class RateWindow:
    """Events per second over the last ``window`` seconds (or since ``started``, if later)."""

    def __init__(self, *, window: float = GOODPUT_WINDOW, started: float = 0.0) -> None:
        self.window = check_number("window", window)
        self.started = started
        self.total = 0
        self._events: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def add(self, count: int, now: float) -> None:
        self._events.append((now, count))
        self._in_window += count
        self.total += count
        self._prune(now)

    def rate(self, now: float) -> float:
        self._prune(now)
        span = min(self.window, now - self.started)
        return self._in_window / span if span > 0 else 0.0

    def _prune(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            self._in_window -= self._events.popleft()[1]
