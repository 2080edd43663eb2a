"""Client-side rate limiting: a token bucket and an exact sliding window (seed 004, 1.2).

Both are policies: ``invoke``/``ainvoke`` take one token, then run the call.
Waiting is fair (first come, first served) and never oversubscribes, even with
threads and asyncio tasks sharing one limiter: a caller reserves its tokens
under a lock, leaves the lock, and only then sleeps until its reservation is
due. A caller cancelled while it sleeps keeps its reservation, because handing
it back could let a later caller overtake the ones already queued.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from servicegrid._validate import check_count, check_number
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import RateLimited
from servicegrid.resilience.deadline import remaining
from servicegrid.resilience.events import CallRejected, Hook, emit

__all__ = ["LimitMode", "RateLimitConfig", "SlidingWindow", "TokenBucket"]

T = TypeVar("T")
LimitMode = Literal["wait", "fail"]


class _Limiter:
    """Reservation, waiting, rejection and counters shared by both limiters."""

    def __init__(
        self,
        capacity: float,
        mode: LimitMode,
        max_wait: float | None,
        name: str,
        clock: Clock,
        hooks: Sequence[Hook],
    ) -> None:
        if mode not in ("wait", "fail"):
            raise ValueError(f"mode must be 'wait' or 'fail', got {mode!r}")
        if max_wait is not None and not 0 <= max_wait < math.inf:
            raise ValueError(f"max_wait must be a finite number >= 0 or None, got {max_wait!r}")
        self.name = name
        self.mode: LimitMode = mode
        self.max_wait = max_wait
        self._capacity = capacity
        self._clock = clock
        self._hooks = tuple(hooks)
        self._lock = threading.Lock()
        self._total_acquired = 0
        self._total_rejected = 0
        self._total_waited = 0.0

    # The two decisions each limiter makes, always called with the lock held.
    def _due_locked(self, tokens: int, now: float) -> float:
        """The earliest clock time (>= now) at which ``tokens`` may be used."""
        raise NotImplementedError

    def _take_locked(self, tokens: int, now: float, due: float) -> None:
        """Record that ``tokens`` are spent at ``due``."""
        raise NotImplementedError

    def _available_locked(self, now: float) -> float:
        raise NotImplementedError

    def _check_tokens(self, tokens: int) -> None:
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise ValueError(f"tokens must be an int, got {tokens!r}")
        if not 1 <= tokens <= self._capacity:
            raise ValueError(f"tokens must be between 1 and {self._capacity:g}, got {tokens!r}")

    def wait_time(self, tokens: int = 1) -> float:
        """Seconds until ``tokens`` could be taken (0 when now); changes nothing."""
        self._check_tokens(tokens)
        with self._lock:
            now = self._clock.now()
            return max(0.0, self._due_locked(tokens, now) - now)

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take ``tokens`` if they are available now; never waits."""
        self._check_tokens(tokens)
        with self._lock:
            now = self._clock.now()
            if self._due_locked(tokens, now) > now:
                self._total_rejected += 1
                return False
            self._take_locked(tokens, now, now)
            self._total_acquired += tokens
            return True

    def _reserve(self, tokens: int) -> float:
        """Reserve ``tokens`` and return the seconds to sleep before using them.

        Raises RateLimited (``retry_after`` = the wait) in fail mode, or when the
        wait would exceed ``max_wait`` or the current call's deadline.
        """
        self._check_tokens(tokens)
        budget = remaining(self._clock)
        with self._lock:
            now = self._clock.now()
            due = self._due_locked(tokens, now)
            wait = max(0.0, due - now)
            reason = self._refusal(wait, budget)
            if reason is None:
                self._take_locked(tokens, now, due)
                self._total_acquired += tokens
                self._total_waited += wait
                return wait
            self._total_rejected += 1
        emit(self._hooks, CallRejected(name=self.name, policy="rate_limit", reason=reason))
        raise RateLimited(
            f"rate limit exceeded ({reason}), retry in {wait:.3f}s",
            service=self.name or None,
            retry_after=wait,
        )

    def _refusal(self, wait: float, budget: float | None) -> str | None:
        if wait <= 0:
            return None
        if self.mode == "fail":
            return "fail_fast"
        if self.max_wait is not None and wait > self.max_wait:
            return "max_wait"
        if budget is not None and wait > budget:
            return "deadline"
        return None

    def acquire(self, tokens: int = 1) -> None:
        """Take ``tokens``, sleeping in the calling thread until they are due (wait mode)."""
        wait = self._reserve(tokens)
        if wait > 0:
            self._clock.sleep(wait)

    async def aacquire(self, tokens: int = 1) -> None:
        """Take ``tokens``, suspending the calling task until they are due (wait mode)."""
        wait = self._reserve(tokens)
        if wait > 0:
            await self._clock.asleep(wait)

    def invoke(self, inner: Callable[[], T]) -> T:
        self.acquire()
        return inner()

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        await self.aacquire()
        return await inner()

    def available(self) -> float:
        """Tokens that could be taken right now without waiting."""
        with self._lock:
            return max(0.0, self._available_locked(self._clock.now()))

    def utilization(self) -> float:
        """Share of capacity in use now, in [0, 1] (1 while callers are queued)."""
        free = self.available()
        return min(1.0, max(0.0, 1.0 - free / self._capacity))

    def _counters(self) -> dict[str, Any]:
        with self._lock:
            acquired, rejected, waited = (
                self._total_acquired,
                self._total_rejected,
                self._total_waited,
            )
        return {
            "available": self.available(),
            "utilization": self.utilization(),
            "total_acquired": acquired,
            "total_rejected": rejected,
            "total_waited_seconds": waited,
        }


class TokenBucket(_Limiter):
    """Tokens refill continuously at ``rate`` per second up to ``burst``; a call takes one.

    Waiting callers borrow from the future, as Guava's RateLimiter does: the
    balance goes negative by what is reserved, so the n-th queued caller runs
    n/rate seconds after the bucket empties. Over any interval of T seconds at
    most ``burst + rate * T`` tokens are used.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        mode: LimitMode = "wait",
        max_wait: float | None = None,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
    ) -> None:
        check_number("rate", rate, inclusive=False)
        if not 1 <= burst < math.inf:
            raise ValueError(f"burst must be a finite number >= 1, got {burst!r}")
        super().__init__(burst, mode, max_wait, name, clock, hooks)
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._now = clock.now
        self._updated = clock.now()

    def _available_locked(self, now: float) -> float:
        elapsed = max(0.0, now - self._updated)
        return min(self.burst, self._tokens + elapsed * self.rate)

    def _due_locked(self, tokens: int, now: float) -> float:
        deficit = tokens - self._available_locked(now)
        return now + deficit / self.rate if deficit > 0 else now

    def _take_locked(self, tokens: int, now: float, due: float) -> None:
        self._tokens = self._available_locked(now) - tokens
        self._updated = max(now, self._updated)

    def _take_one_now(self) -> bool:
        """The hot path: take one token if one is there now, in one lock and no other call.

        A balance below one means someone is queued or the bucket is empty; the
        caller then takes the fair, reserving path of :meth:`acquire`.
        """
        with self._lock:
            now = self._now()
            tokens = self._tokens
            if now > self._updated:
                tokens = min(self.burst, tokens + (now - self._updated) * self.rate)
                self._updated = now
            self._tokens = tokens
            if tokens < 1:
                return False
            self._tokens = tokens - 1
            self._total_acquired += 1
            return True

    def invoke(self, inner: Callable[[], T]) -> T:
        if not self._take_one_now():
            self.acquire()
        return inner()

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        if not self._take_one_now():
            await self.aacquire()
        return await inner()

    def get_status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: type, rate, burst, availability and totals."""
        return {"type": "token_bucket", "rate": self.rate, "burst": self.burst} | self._counters()

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate!r}, burst={self.burst!r}, mode={self.mode!r})"


class SlidingWindow(_Limiter):
    """At most ``max_requests`` calls in any trailing ``window`` seconds.

    Keeps the exact time of every call in the window (a deque), so it never
    lets through the double burst a fixed window allows at its edges.
    """

    def __init__(
        self,
        max_requests: int,
        window: float,
        *,
        mode: LimitMode = "wait",
        max_wait: float | None = None,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
    ) -> None:
        check_count("max_requests", max_requests)
        check_number("window", window, inclusive=False)
        super().__init__(max_requests, mode, max_wait, name, clock, hooks)
        self.max_requests = max_requests
        self.window = window
        # Times at which calls ran or are reserved to run, in order; future ones are queued.
        self._log: deque[float] = deque()

    def _prune(self, now: float) -> None:
        cutoff = now - self.window
        while self._log and self._log[0] <= cutoff:
            self._log.popleft()

    def _available_locked(self, now: float) -> float:
        self._prune(now)
        return float(self.max_requests - len(self._log))

    def _due_locked(self, tokens: int, now: float) -> float:
        self._prune(now)
        log = self._log
        queued = bool(log) and log[-1] > now
        if len(log) + tokens <= self.max_requests and not queued:
            return now
        # Queue behind earlier reservations, and wait until enough entries leave the window.
        due = max(now, log[-1]) if log else now
        must_expire = len(log) + tokens - self.max_requests
        if must_expire > 0:
            due = max(due, log[must_expire - 1] + self.window)
        return due

    def _take_locked(self, tokens: int, now: float, due: float) -> None:
        self._log.extend([due] * tokens)

    def get_status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: type, max_requests, window, burst, availability and totals."""
        head = {
            "type": "sliding_window",
            "max_requests": self.max_requests,
            "window": self.window,
            "burst": self.max_requests,
        }
        return head | self._counters()

    def __repr__(self) -> str:
        return (
            f"SlidingWindow(max_requests={self.max_requests!r}, window={self.window!r}, "
            f"mode={self.mode!r})"
        )


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """How to rate-limit calls to one service (seed 004).

    ``token_bucket``: ``requests_per_second`` refill, ``burst_size`` tokens.
    ``sliding_window``: ``max(1, round(requests_per_second))`` calls per
    ``max_requests / requests_per_second`` seconds (1 s for whole-number rates);
    ``burst_size`` does not apply. ``wait=False`` fails fast with RateLimited.
    """

    requests_per_second: float = 10.0
    burst_size: int = 20
    strategy: Literal["token_bucket", "sliding_window"] = "token_bucket"
    wait: bool = True
    max_wait: float | None = None

    def __post_init__(self) -> None:
        check_number("requests_per_second", self.requests_per_second, inclusive=False)
        if self.burst_size < 1:
            raise ValueError(f"burst_size must be >= 1, got {self.burst_size!r}")
        if self.strategy not in ("token_bucket", "sliding_window"):
            raise ValueError(
                f"strategy must be 'token_bucket' or 'sliding_window', got {self.strategy!r}"
            )
        if self.max_wait is not None and not 0 <= self.max_wait < math.inf:
            raise ValueError(
                f"max_wait must be a finite number >= 0 or None, got {self.max_wait!r}"
            )

    def build(
        self, *, name: str = "", clock: Clock = SYSTEM_CLOCK, hooks: Sequence[Hook] = ()
    ) -> TokenBucket | SlidingWindow:
        """A new limiter with its own state, as configured."""
        mode: LimitMode = "wait" if self.wait else "fail"
        if self.strategy == "token_bucket":
            return TokenBucket(
                self.requests_per_second,
                self.burst_size,
                mode=mode,
                max_wait=self.max_wait,
                name=name,
                clock=clock,
                hooks=hooks,
            )
        max_requests = max(1, round(self.requests_per_second))
        return SlidingWindow(
            max_requests,
            max_requests / self.requests_per_second,
            mode=mode,
            max_wait=self.max_wait,
            name=name,
            clock=clock,
            hooks=hooks,
        )
