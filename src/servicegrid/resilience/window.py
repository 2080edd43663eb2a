"""Outcome windows for rate-based breaker thresholds: the last N calls, or the last N seconds.

Not thread-safe on their own: the breaker calls them under its lock.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple, Protocol

__all__ = ["CountWindow", "OutcomeWindow", "TimeWindow", "WindowSnapshot"]


class WindowSnapshot(NamedTuple):
    calls: int
    failures: int
    slow: int

    def failure_rate(self) -> float:
        """Failures as a percentage of calls (0 when empty)."""
        return 100.0 * self.failures / self.calls if self.calls else 0.0

    def slow_rate(self) -> float:
        """Slow calls as a percentage of calls (0 when empty)."""
        return 100.0 * self.slow / self.calls if self.calls else 0.0


class OutcomeWindow(Protocol):
    def record(self, failed: bool, slow: bool, now: float) -> None: ...
    def snapshot(self, now: float) -> WindowSnapshot: ...
    def clear(self) -> None: ...


class CountWindow:
    """The outcomes of the last ``size`` calls."""

    def __init__(self, size: int) -> None:
        self._outcomes: deque[tuple[bool, bool]] = deque(maxlen=size)
        self._failures = 0
        self._slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        if len(self._outcomes) == self._outcomes.maxlen:
            old_failed, old_slow = self._outcomes[0]
            self._failures -= old_failed
            self._slow -= old_slow
        self._outcomes.append((failed, slow))
        self._failures += failed
        self._slow += slow

    def snapshot(self, now: float) -> WindowSnapshot:
        return WindowSnapshot(len(self._outcomes), self._failures, self._slow)

    def clear(self) -> None:
        self._outcomes.clear()
        self._failures = self._slow = 0


class TimeWindow:
    """The outcomes of the last ``seconds`` seconds, in one-second buckets."""

    def __init__(self, seconds: int) -> None:
        self._seconds = seconds
        # each bucket: [second, calls, failures, slow]
        self._buckets: deque[list[int]] = deque()

    def _expire(self, now: float) -> None:
        horizon = int(now) - self._seconds
        while self._buckets and self._buckets[0][0] <= horizon:
            self._buckets.popleft()

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self._expire(now)
        second = int(now)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow

    def snapshot(self, now: float) -> WindowSnapshot:
        self._expire(now)
        calls = failures = slow = 0
        for _, c, f, s in self._buckets:
            calls += c
            failures += f
            slow += s
        return WindowSnapshot(calls, failures, slow)

    def clear(self) -> None:
        self._buckets.clear()
