"""Health monitor: check a dependency on an interval and track its state (seed 004, 1.3)."""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from servicegrid.clock import SYSTEM_CLOCK, Clock, iso_utc

__all__ = ["HealthCheck", "HealthCheckResult", "HealthMonitor", "HealthState", "StateChangeHook"]

_log = logging.getLogger("servicegrid.resilience")

HealthCheck = Callable[[], Awaitable[bool | None]]
StateChangeHook = Callable[["HealthState", "HealthState"], None]


class HealthState(enum.Enum):
    """What the last checks say about a dependency."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HealthCheckResult:
    """One check: the state it left the monitor in, and why.

    ``response_time`` is in seconds, ``checked_at`` is the wall-clock epoch
    second the check finished, ``error`` is None for a successful check.
    """

    state: HealthState
    response_time: float
    checked_at: float
    error: str | None = None


class HealthMonitor:
    """Run ``check`` every ``interval`` seconds and derive a :class:`HealthState`.

    A check succeeds when it returns True or None within ``timeout`` seconds
    (real time); it fails when it returns False, raises or times out. State:
    UNKNOWN before the first check; a fast success is HEALTHY and one slower
    than ``degraded_response_time`` DEGRADED; a failure is DEGRADED, and
    ``unhealthy_threshold`` failures in a row are UNHEALTHY. ``on_change``
    callbacks get ``(old, new)`` on every change.
    """

    def __init__(
        self,
        check: HealthCheck,
        *,
        name: str = "",
        interval: float = 30.0,
        timeout: float = 5.0,
        degraded_response_time: float = 1.0,
        unhealthy_threshold: int = 3,
        history_size: int = 100,
        clock: Clock = SYSTEM_CLOCK,
        on_change: Sequence[StateChangeHook] = (),
    ) -> None:
        if not callable(check):
            raise ValueError(f"check must be a callable returning an awaitable, got {check!r}")
        for arg, seconds in (
            ("interval", interval),
            ("timeout", timeout),
            ("degraded_response_time", degraded_response_time),
        ):
            if not 0 < seconds < float("inf"):
                raise ValueError(f"{arg} must be a finite number > 0, got {seconds!r}")
        for arg, count in (
            ("unhealthy_threshold", unhealthy_threshold),
            ("history_size", history_size),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{arg} must be an int >= 1, got {count!r}")
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.degraded_response_time = degraded_response_time
        self.unhealthy_threshold = unhealthy_threshold
        self._check = check
        self._clock = clock
        self._on_change = tuple(on_change)
        self._lock = threading.Lock()
        self._state = HealthState.UNKNOWN
        self._consecutive_failures = 0
        self._total_checks = 0
        self._total_successes = 0
        self._history: deque[HealthCheckResult] = deque(maxlen=history_size)
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> HealthState:
        with self._lock:
            return self._state

    def is_healthy(self) -> bool:
        """True only in the HEALTHY state (DEGRADED still serves, but is not healthy)."""
        return self.state is HealthState.HEALTHY

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._consecutive_failures

    @property
    def total_checks(self) -> int:
        with self._lock:
            return self._total_checks

    @property
    def total_successes(self) -> int:
        with self._lock:
            return self._total_successes

    @property
    def uptime_percentage(self) -> float:
        """Successful checks as a percentage of all checks (0 before the first)."""
        with self._lock:
            checks, successes = self._total_checks, self._total_successes
        return 100.0 * successes / checks if checks else 0.0

    @property
    def history(self) -> tuple[HealthCheckResult, ...]:
        """The last ``history_size`` results, oldest first."""
        with self._lock:
            return tuple(self._history)

    @property
    def average_response_time(self) -> float:
        """Mean response time over the history, in seconds (0 before the first check)."""
        history = self.history
        return sum(r.response_time for r in history) / len(history) if history else 0.0

    @property
    def last_result(self) -> HealthCheckResult | None:
        with self._lock:
            return self._history[-1] if self._history else None

    @property
    def running(self) -> bool:
        """True while the background loop started by :meth:`start` is alive."""
        return self._task is not None and not self._task.done()

    async def check_now(self) -> HealthCheckResult:
        """Run the check once, update the state and return the result; never raises for it."""
        started = self._clock.now()
        error = await self._run_check()
        return self._record(max(0.0, self._clock.now() - started), error)

    async def _run_check(self) -> str | None:
        """None on success, else why the check failed."""
        try:
            outcome = await asyncio.wait_for(self._check(), self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "check returned False" if outcome is False else None

    def _record(self, response_time: float, error: str | None) -> HealthCheckResult:
        with self._lock:
            self._total_checks += 1
            if error is None:
                self._total_successes += 1
                self._consecutive_failures = 0
                slow = response_time > self.degraded_response_time
                new = HealthState.DEGRADED if slow else HealthState.HEALTHY
            else:
                self._consecutive_failures += 1
                down = self._consecutive_failures >= self.unhealthy_threshold
                new = HealthState.UNHEALTHY if down else HealthState.DEGRADED
            old, self._state = self._state, new
            result = HealthCheckResult(new, response_time, self._clock.wall(), error)
            self._history.append(result)
        if new is not old:
            self._notify(old, new)
        return result

    def _notify(self, old: HealthState, new: HealthState) -> None:
        for callback in self._on_change:
            try:
                callback(old, new)
            except Exception:
                _log.exception(
                    "health on_change callback %r failed on %s -> %s", callback, old, new
                )

    def start(self) -> None:
        """Check now and then every ``interval`` s in a task on the running loop; idempotent."""
        if self.running:
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"health-monitor:{self.name}")

    async def stop(self) -> None:
        """Cancel the background loop and wait for it to end; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.result()  # an unexpected loop error surfaces here, with its own type

    async def _run(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:  # check_now absorbs checker errors; this guards the loop itself
                _log.exception("health monitor %r: check failed unexpectedly", self.name)
            # Python 3.11's wait_for drops a cancel that lands as the check finishes; the
            # task still counts it, so honour it here or stop() would wait forever
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await self._clock.asleep(self.interval)

    def get_status(self) -> dict[str, Any]:
        """A JSON-ready snapshot; times in milliseconds, ``last_check`` ISO-8601 UTC or None."""
        with self._lock:
            state, failures = self._state, self._consecutive_failures
            checks, successes = self._total_checks, self._total_successes
            history = tuple(self._history)
        last = history[-1] if history else None
        mean = sum(r.response_time for r in history) / len(history) if history else 0.0
        return {
            "name": self.name,
            "status": state.value,
            "consecutive_failures": failures,
            "uptime_percentage": 100.0 * successes / checks if checks else 0.0,
            "average_response_time_ms": mean * 1000.0,
            "last_response_time_ms": None if last is None else last.response_time * 1000.0,
            "last_check": None if last is None else iso_utc(last.checked_at),
            "total_checks": checks,
            "history_size": len(history),
        }

    def __repr__(self) -> str:
        return f"HealthMonitor(name={self.name!r}, state={self.state.value!r})"
