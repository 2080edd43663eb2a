"""Per-client rate limits: one token bucket per (client, resource), the least recent forgotten.

``check`` counts one request when a token is there and says, either way, how
many whole requests are left, when the bucket is full again, and (refused)
when the next request will be allowed. Seconds throughout.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Final

from servicegrid.apps.api_gateway.schemas import RateLimitAnswer
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.resilience.ratelimit import TokenBucket

__all__ = ["MAX_CLIENTS", "ClientLimits"]

MAX_CLIENTS: Final = 10_000
"""Buckets kept at most; the least recently checked (client, resource) is forgotten first."""

_EPSILON: Final = 1e-9  # a refill of exactly n tokens must count as n, float sums or not


class ClientLimits:
    """``rate`` requests per second per (client, resource), bursts up to ``burst``."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Clock = SYSTEM_CLOCK,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be above zero, burst and max_clients at least one")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, client_id: str, resource: str) -> TokenBucket:
        key = (client_id, resource)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(
                    self.rate, self.burst, mode="fail", name="api-gateway", clock=self._clock
                )
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket

    def check(self, client_id: str, resource: str = "default") -> RateLimitAnswer:
        """Take a token for one request of ``client_id`` on ``resource`` if one is there."""
        bucket = self._bucket(client_id, resource)
        allowed = bucket.try_acquire()
        available = bucket.available()
        return RateLimitAnswer(
            allowed=allowed,
            remaining=min(self.burst, math.floor(available + _EPSILON)),
            reset_after_seconds=max(0.0, (self.burst - available) / self.rate),
            retry_after_seconds=0.0 if allowed else bucket.wait_time(1),
        )
