"""Circuit breaker: CLOSED → OPEN → HALF_OPEN → CLOSED, safe under threads and tasks at once.

* CLOSED: calls pass. ``failure_threshold`` consecutive failures open it, and so
  do the optional failure-rate and slow-call-rate thresholds (percent, over a
  count- or time-based window, once ``minimum_calls`` calls are in it).
* OPEN: calls are rejected with :class:`ServiceUnavailable` until
  ``recovery_timeout`` seconds have passed, then the breaker is HALF_OPEN.
* HALF_OPEN: a single trial call at a time goes through, the rest are rejected.
  A failed trial opens it again; ``success_threshold`` successful trials close
  it. A trial that is cancelled or ends in an error that does not count gives
  its slot back, and a trial still running after ``half_open_max_duration``
  seconds re-opens the breaker, so it can never stay stuck in HALF_OPEN.

Every call is admitted with a permit stamped with the breaker's generation
(bumped on every transition); an outcome that arrives after the state changed
is counted in the totals but cannot move the state machine.
"""

from __future__ import annotations

import enum
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

from servicegrid._validate import check_count, check_number
from servicegrid.clock import SYSTEM_CLOCK, Clock, iso_utc
from servicegrid.errors import ServiceError, ServiceUnavailable
from servicegrid.resilience.events import BreakerTransitioned, CallRejected, Event, Hook, emit
from servicegrid.resilience.window import CountWindow, OutcomeWindow, TimeWindow

__all__ = ["CircuitBreaker", "CircuitBreakerConfig", "CircuitState", "Override", "Permit"]

T = TypeVar("T")


class CircuitState(enum.Enum):
    """Breaker states; the values are what status JSON shows."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Override(enum.Enum):
    """Manual control: ``FORCED_OPEN`` rejects everything, ``DISABLED`` lets everything through."""

    NONE = "none"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class Permit(NamedTuple):
    """Admission ticket for one call; hand it back through ``record_*`` or ``release``."""

    generation: int
    trial: bool


_UNTRACKED = Permit(-1, False)
_CLOSED, _NO_OVERRIDE = CircuitState.CLOSED, Override.NONE
# why a call was rejected (by whether the breaker was forced open), and what the error says
_REASONS = {False: "circuit open", True: "forced open"}
_REJECTIONS: dict[object, str] = {
    "forced": "circuit breaker is forced open; call rejected",
    CircuitState.OPEN: "circuit breaker is open; call rejected",
    CircuitState.HALF_OPEN: "circuit breaker is half-open and its trial call is in flight; "
    "call rejected",
    CircuitState.CLOSED: "circuit breaker is open; call rejected",
}


def _percent(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value <= 100):
        raise ValueError(f"{name} must be a percentage in (0, 100] or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """What a breaker does (seed 004's name); the breaker object holds the state.

    Durations are seconds, rate thresholds are percentages. ``window_size`` is
    a number of calls for ``window_type="count"`` and of seconds for ``"time"``.
    """

    failure_threshold: int = 5
    success_threshold: int = 1
    recovery_timeout: float = 60.0
    half_open_max_duration: float = 60.0
    failure_rate_threshold: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration: float = 60.0
    window_type: Literal["count", "time"] = "count"
    window_size: int = 100
    minimum_calls: int = 10

    def __post_init__(self) -> None:
        check_count("failure_threshold", self.failure_threshold)
        check_count("success_threshold", self.success_threshold)
        check_number("recovery_timeout", self.recovery_timeout)
        check_number("half_open_max_duration", self.half_open_max_duration, inclusive=False)
        _percent("failure_rate_threshold", self.failure_rate_threshold)
        _percent("slow_call_rate_threshold", self.slow_call_rate_threshold)
        check_number("slow_call_duration", self.slow_call_duration, inclusive=False)
        if self.window_type not in ("count", "time"):
            raise ValueError(f"window_type must be 'count' or 'time', got {self.window_type!r}")
        check_count("window_size", self.window_size)
        check_count("minimum_calls", self.minimum_calls)

    def new_window(self) -> OutcomeWindow | None:
        if self.failure_rate_threshold is None and self.slow_call_rate_threshold is None:
            return None
        if self.window_type == "time":
            return TimeWindow(self.window_size)
        return CountWindow(self.window_size)


class CircuitBreaker:
    """A circuit breaker for one target; also a :class:`Policy` for a pipeline.

    ``CircuitBreaker(failure_threshold=5, recovery_timeout=60.0,
    expected_exception=grpc.RpcError)`` works as in seed 000: only instances of
    ``expected_exception`` count as failures, and among servicegrid errors only
    those the error table marks retryable and not 4xx: a 4xx says nothing about
    the service's health, and a 429 (RESOURCE_EXHAUSTED, a service shedding
    load and saying when to come back) is the service working as meant.
    ``counts_as_failure`` replaces that rule entirely.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 60.0,
        expected_exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        *,
        name: str = "",
        config: CircuitBreakerConfig | None = None,
        counts_as_failure: Callable[[BaseException], bool] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
        **options: Any,
    ) -> None:
        if config is None:
            config = CircuitBreakerConfig(
                failure_threshold=failure_threshold, recovery_timeout=recovery_timeout, **options
            )
        elif options:
            raise TypeError("pass either config= or individual options, not both")
        self.config = config
        self.name = name
        self.expected_exception = expected_exception
        self._counts = counts_as_failure or self._default_counts_as_failure
        self._clock = clock
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        self._lock = threading.Lock()
        self._emit_lock = threading.RLock()
        self._pending: list[Event] = []
        self._window = config.new_window()
        self._timed = config.slow_call_rate_threshold is not None
        # Without a rate window or slow-call timing, a CLOSED-state success with no failures
        # to reset only adds to the total: invoke and ainvoke take that path without a call
        # (unless a subclass hooks record_success, which then hears of every success).
        self._plain = (
            self._window is None
            and not self._timed
            and type(self).record_success is CircuitBreaker.record_success
        )
        self._state = CircuitState.CLOSED
        self._override = Override.NONE
        self._generation = 0
        self._closed_permit = Permit(0, False)
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._trial_started = 0.0
        self._half_open_successes = 0
        self._consecutive_failures = 0
        self._last_failure: float | None = None
        self._last_state_change = clock.wall()
        self.total_successes = 0
        self.total_failures = 0
        self.total_rejected = 0

    # ---- the seed-000 surface -------------------------------------------------------

    @property
    def failure_threshold(self) -> int:
        return self.config.failure_threshold

    @property
    def recovery_timeout(self) -> float:
        return self.config.recovery_timeout

    @property
    def state(self) -> CircuitState:
        """The current state; an OPEN breaker whose cool-down is over reads HALF_OPEN."""
        with self._lock:
            if self._override is Override.FORCED_OPEN:
                return CircuitState.OPEN
            if self._override is Override.DISABLED:
                return CircuitState.CLOSED
            if (
                self._state is CircuitState.OPEN
                and self._clock.now() - self._opened_at >= self.config.recovery_timeout
            ):
                self._transition(CircuitState.HALF_OPEN, "recovery timeout elapsed")
            state = self._state
        self._flush()
        return state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted since the last success."""
        return self._consecutive_failures

    @property
    def override(self) -> Override:
        return self._override

    def get_state(self) -> CircuitState:
        return self.state

    def get_failure_count(self) -> int:
        return self._consecutive_failures

    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` under the breaker, awaiting its result if awaitable."""

        async def inner() -> Any:
            result = func(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return await self.ainvoke(inner)

    def call_sync(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` under the breaker in the calling thread."""
        return self.invoke(lambda: func(*args, **kwargs))

    # ---- the Policy seam ------------------------------------------------------------

    def invoke(self, inner: Callable[[], T]) -> T:
        permit = self.acquire()
        started = self._clock.now() if self._timed else 0.0
        try:
            result = inner()
        except BaseException as error:
            self._record_error(permit, error, self._elapsed(started))
            raise
        if permit is self._closed_permit and self._plain and not self._consecutive_failures:
            with self._lock:  # a success that changes nothing but the total
                self.total_successes += 1
        else:
            self.record_success(permit, self._elapsed(started))
        return result

    def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> Coroutine[Any, Any, T]:
        """Admit the call now (raising :class:`ServiceUnavailable` at once when refused), then
        return the coroutine that runs it: a refusal costs no coroutine at all."""
        return self._arun(self.acquire(), inner)

    async def _arun(self, permit: Permit, inner: Callable[[], Awaitable[T]]) -> T:
        started = self._clock.now() if self._timed else 0.0
        try:
            result = await inner()
        except BaseException as error:
            self._record_error(permit, error, self._elapsed(started))
            raise
        if permit is self._closed_permit and self._plain and not self._consecutive_failures:
            with self._lock:  # a success that changes nothing but the total
                self.total_successes += 1
        else:
            self.record_success(permit, self._elapsed(started))
        return result

    def _elapsed(self, started: float) -> float:
        # durations only matter to the slow-call rate; skip the clock otherwise
        return self._clock.now() - started if self._timed else 0.0

    # ---- admission and outcomes -----------------------------------------------------

    def acquire(self) -> Permit:
        """Admit one call or raise :class:`ServiceUnavailable`."""
        # Fast path: a plain read is safe here; a call admitted just as the breaker
        # opens carries the old generation and its outcome cannot move the state.
        if self._state is _CLOSED and self._override is _NO_OVERRIDE:
            return self._closed_permit
        with self._lock:
            permit = self._acquire_locked()
            if permit is None:
                self.total_rejected += 1
        if self._pending:
            self._flush()
        if permit is None:
            raise self._rejection()
        return permit

    def _acquire_locked(self) -> Permit | None:
        if self._override is Override.DISABLED:
            return _UNTRACKED
        if self._override is Override.FORCED_OPEN:
            return None
        now = self._clock.now()
        if self._state is CircuitState.OPEN:
            if now - self._opened_at < self.config.recovery_timeout:
                return None
            self._transition(CircuitState.HALF_OPEN, "recovery timeout elapsed")
        if self._state is CircuitState.HALF_OPEN:
            if self._trial_in_flight:
                if now - self._trial_started >= self.config.half_open_max_duration:
                    self._transition(CircuitState.OPEN, "half-open trial took too long")
                return None
            self._trial_in_flight = True
            self._trial_started = now
            return Permit(self._generation, True)
        return Permit(self._generation, False)

    def admits_after(self, delay: float) -> bool:
        """Whether a call ``delay`` seconds from now could be admitted; changes nothing."""
        if self._override is not Override.NONE:
            return self._override is Override.DISABLED
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN:
            ready_at = self._opened_at + self.config.recovery_timeout
            return self._clock.now() + delay >= ready_at
        return not self._trial_in_flight

    def _rejection(self) -> ServiceUnavailable:
        forced = self._override is Override.FORCED_OPEN
        if self.hooks:
            emit(self.hooks, CallRejected(self.name, "breaker", _REASONS[forced]))
        message = _REJECTIONS["forced" if forced else self._state]
        return ServiceUnavailable._made(
            message, service=self.name or None, retry_after=self._retry_after()
        )

    def retry_after(self) -> float | None:
        """Seconds until an open breaker lets a trial call through; None when not open."""
        return self._retry_after()

    def _retry_after(self) -> float | None:
        if self._state is not CircuitState.OPEN:
            return None
        return max(self.config.recovery_timeout - (self._clock.now() - self._opened_at), 0.0)

    def record_success(self, permit: Permit, duration: float = 0.0) -> None:
        """Report that the call admitted with ``permit`` succeeded after ``duration`` seconds."""
        if permit.generation < 0:
            return
        slow = self._timed and duration >= self.config.slow_call_duration
        with self._lock:
            self.total_successes += 1
            if permit.generation != self._generation:
                return
            self._consecutive_failures = 0
            if self._window is not None:
                self._window.record(False, slow, self._clock.now())
            if self._state is CircuitState.HALF_OPEN:
                self._trial_in_flight = False
                self._half_open_successes += 1
                if self._half_open_successes >= self.config.success_threshold:
                    self._transition(CircuitState.CLOSED, "service recovered")
            elif slow:
                self._trip_on_rates()
        if self._pending:
            self._flush()

    def record_failure(self, permit: Permit, duration: float = 0.0) -> None:
        """Report that the call admitted with ``permit`` failed after ``duration`` seconds."""
        if permit.generation < 0:
            return
        slow = self._timed and duration >= self.config.slow_call_duration
        with self._lock:
            self.total_failures += 1
            self._last_failure = self._clock.wall()
            if permit.generation != self._generation:
                return
            self._consecutive_failures += 1
            if self._window is not None:
                self._window.record(True, slow, self._clock.now())
            if self._state is CircuitState.HALF_OPEN:
                self._transition(CircuitState.OPEN, "trial call failed")
            elif self._consecutive_failures >= self.config.failure_threshold:
                self._transition(CircuitState.OPEN, "threshold reached")
            else:
                self._trip_on_rates()
        self._flush()

    def release(self, permit: Permit) -> None:
        """Give back a permit whose call neither succeeded nor failed (cancelled, ignored)."""
        if not permit.trial:
            return
        with self._lock:
            if permit.generation == self._generation and self._state is CircuitState.HALF_OPEN:
                self._trial_in_flight = False

    def _record_error(self, permit: Permit, error: BaseException, duration: float) -> None:
        if isinstance(error, Exception) and self._counts(error):
            self.record_failure(permit, duration)
        else:
            self.release(permit)

    def _default_counts_as_failure(self, error: BaseException) -> bool:
        if isinstance(error, ServiceError) and 400 <= error.http_status < 500:
            return False  # a refusal of this call (even 429, "come back later"), not ill health
        return isinstance(error, self.expected_exception) and bool(
            getattr(error, "retryable", True)
        )

    def _trip_on_rates(self) -> None:
        if self._window is None:
            return
        snap = self._window.snapshot(self._clock.now())
        if snap.calls < self.config.minimum_calls:
            return
        cfg = self.config
        if cfg.failure_rate_threshold is not None and snap.failure_rate() >= (
            cfg.failure_rate_threshold
        ):
            self._transition(CircuitState.OPEN, f"failure rate {snap.failure_rate():.0f}%")
        elif cfg.slow_call_rate_threshold is not None and snap.slow_rate() >= (
            cfg.slow_call_rate_threshold
        ):
            self._transition(CircuitState.OPEN, f"slow call rate {snap.slow_rate():.0f}%")

    def _transition(self, new: CircuitState, reason: str) -> None:
        """Move to ``new``; the caller holds the lock. Events go out after it is released."""
        old = self._state
        if old is new:
            return
        now = self._clock.now()
        self._state = new
        self._generation += 1
        if new is CircuitState.CLOSED:
            # Only a CLOSED generation may hand out plain permits from the lock-free fast
            # path; a reader that saw CLOSED late gets a stale permit, which moves nothing.
            self._closed_permit = Permit(self._generation, False)
        self._last_state_change = self._clock.wall()
        self._trial_in_flight = False
        self._half_open_successes = 0
        if new is CircuitState.OPEN:
            self._opened_at = now
        elif new is CircuitState.CLOSED:
            self._consecutive_failures = 0
            if self._window is not None:
                self._window.clear()
        if self.hooks:
            self._pending.append(
                BreakerTransitioned(
                    self.name, old.value, new.value, reason, self._last_state_change
                )
            )

    def _flush(self) -> None:
        if not self._pending:
            return
        # Taking and delivering under one (re-entrant) lock keeps hooks in transition order:
        # a later batch cannot overtake an earlier one that is still being delivered.
        with self._emit_lock:
            with self._lock:
                events, self._pending = self._pending, []
            for event in events:
                emit(self.hooks, event)

    # ---- manual control -------------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until :meth:`reset`."""
        self._set_override(Override.FORCED_OPEN)

    def disable(self) -> None:
        """Let every call through and record nothing until :meth:`reset`."""
        self._set_override(Override.DISABLED)

    def reset(self) -> None:
        """Clear any override and return to CLOSED with zero failures."""
        with self._lock:
            override, self._override = self._override, Override.NONE
            if self._state is CircuitState.CLOSED and override is not Override.NONE:
                # the state itself does not change, but the override's end is news to hooks
                self._last_state_change = self._clock.wall()
                if self.hooks:
                    self._pending.append(
                        BreakerTransitioned(
                            self.name,
                            override.value,
                            "closed",
                            "manual reset",
                            self._last_state_change,
                        )
                    )
            self._transition(CircuitState.CLOSED, "manual reset")
            self._consecutive_failures = 0
        self._flush()

    def _set_override(self, override: Override) -> None:
        with self._lock:
            self._override = override
            self._last_state_change = self._clock.wall()
        if self.hooks:
            emit(
                self.hooks,
                BreakerTransitioned(
                    self.name,
                    self._state.value,
                    override.value,
                    "manual override",
                    self._clock.wall(),
                ),
            )

    # ---- reporting ------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        """Seed 001's status: service, state, failure_count, last_failure, last_state_change.

        Timestamps are ISO-8601 UTC with a ``Z``; ``last_failure`` is None before any failure.
        """
        state = self.state
        return {
            "service": self.name,
            "state": state.value,
            "failure_count": self._consecutive_failures,
            "last_failure": iso_utc(self._last_failure),
            "last_state_change": iso_utc(self._last_state_change),
        }

    def metrics(self) -> dict[str, Any]:
        """Everything else worth watching: totals, override, window rates."""
        state = self.state
        with self._lock:
            window = self._window.snapshot(self._clock.now()) if self._window else None
            return {
                "service": self.name,
                "state": state.value,
                "override": self._override.value,
                "failure_count": self._consecutive_failures,
                "total_calls": self.total_successes + self.total_failures,
                "total_successes": self.total_successes,
                "total_failures": self.total_failures,
                "total_rejected": self.total_rejected,
                "failure_rate": window.failure_rate() if window else None,
                "slow_call_rate": window.slow_rate() if window else None,
                "window_calls": window.calls if window else None,
                "failure_threshold": self.config.failure_threshold,
                "recovery_timeout": self.config.recovery_timeout,
            }

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state.value})"
