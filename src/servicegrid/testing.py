"""Test helpers: a fake clock that moves when it sleeps, and a test mode for retries.

.. code-block:: python

    clock = FakeClock()
    breaker = CircuitBreaker(recovery_timeout=30.0, clock=clock)
    clock.advance(30.0)          # a 30 s cool-down, in microseconds

    with set_testing(True, attempts=1):
        ...                      # retries: no backoff, at most one attempt
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from servicegrid.resilience._config import CONFIG

__all__ = ["FakeClock", "set_active", "set_testing"]


class FakeClock:
    """A :class:`servicegrid.clock.Clock` whose time moves only when told or when slept on.

    ``sleep``/``asleep`` advance the time by the requested amount at once and
    record it in :attr:`sleeps`. ``asleep`` still yields to the event loop once,
    so other tasks interleave as they would.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_763_202_645.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> float:
        with self._lock:
            return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without recording a sleep."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


@contextmanager
def set_testing(testing: bool = True, *, attempts: int = 1) -> Iterator[None]:
    """Zero backoff and at most ``attempts`` attempts per call (0 keeps the configured count).

    Usable as a context manager; the previous mode comes back on exit.
    """
    with CONFIG.lock:
        previous = (CONFIG.testing, CONFIG.attempts)
        CONFIG.testing, CONFIG.attempts = testing, attempts
    try:
        yield
    finally:
        with CONFIG.lock:
            CONFIG.testing, CONFIG.attempts = previous


@contextmanager
def set_active(active: bool) -> Iterator[None]:
    """Switch retries on or off everywhere (off: one attempt per call)."""
    with CONFIG.lock:
        previous = CONFIG.active
        CONFIG.active = active
    try:
        yield
    finally:
        with CONFIG.lock:
            CONFIG.active = previous
