"""A retry budget: retries may add at most ``ratio`` of the traffic, plus a small floor.

Over a sliding ``ttl``-second window, a retry is allowed while

    retries_in_window < min_per_second * ttl + ratio * requests_in_window

so a failing service sees at most (1 + ratio) times its normal load from a
caller, however many attempts each call is allowed (Finagle's RetryBudget).
One budget is shared by every call to the same target.
"""

from __future__ import annotations

import threading
from collections import deque

from servicegrid._validate import check_number
from servicegrid.clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget"]


class RetryBudget:
    """Shared, thread-safe retry allowance for one target."""

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        check_number("ratio", ratio)
        check_number("min_per_second", min_per_second)
        check_number("ttl", ttl, inclusive=False)
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.ttl
        for log in (self._requests, self._retries):
            while log and log[0] <= horizon:
                log.popleft()

    def record_request(self) -> None:
        """Count a first attempt; each one earns ``ratio`` of a retry."""
        now = self._clock.now()
        with self._lock:
            self._expire(now)
            self._requests.append(now)

    def try_withdraw(self) -> bool:
        """Spend one retry if the budget allows it; False means do not retry."""
        now = self._clock.now()
        with self._lock:
            self._expire(now)
            allowed = self.min_per_second * self.ttl + self.ratio * len(self._requests)
            if len(self._retries) >= allowed:
                return False
            self._retries.append(now)
            return True

    def get_status(self) -> dict[str, float]:
        now = self._clock.now()
        with self._lock:
            self._expire(now)
            allowed = self.min_per_second * self.ttl + self.ratio * len(self._requests)
            return {
                "requests": len(self._requests),
                "retries": len(self._retries),
                "retries_allowed": allowed,
            }
