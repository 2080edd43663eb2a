"""Circuit breaker state machine (seeds 000/001), driven by a FakeClock: nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from servicegrid.errors import (
    GpuUnavailable,
    ResourceExhausted,
    ServiceUnavailable,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.resilience.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Override,
    Permit,
)
from servicegrid.resilience.events import BreakerTransitioned, CallRejected, Event
from servicegrid.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def fail() -> str:
    raise ServiceUnavailableError("down")


def ok() -> str:
    return "ok"


async def afail() -> str:
    await asyncio.sleep(0)
    raise ServiceUnavailableError("down")


async def aok() -> str:
    await asyncio.sleep(0)
    return "ok"


def failing_call(breaker: CircuitBreaker, times: int = 1) -> None:
    """Run ``times`` calls that fail at the service (not rejected by the breaker)."""
    for _ in range(times):
        with pytest.raises(ServiceUnavailableError) as caught:
            breaker.call_sync(fail)
        assert type(caught.value) is ServiceUnavailableError


def rejected(breaker: CircuitBreaker, fn: Callable[[], Any] = ok) -> ServiceUnavailable:
    with pytest.raises(ServiceUnavailable) as caught:
        breaker.call_sync(fn)
    return caught.value


class Recorder:
    """A hook that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    @property
    def transitions(self) -> list[tuple[str, str, str]]:
        return [(e.old, e.new, e.reason) for e in self.events if isinstance(e, BreakerTransitioned)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hook() -> Recorder:
    return Recorder()


def make(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("failure_threshold", 3)
    kwargs.setdefault("recovery_timeout", 30.0)
    return CircuitBreaker(clock=clock, **kwargs)


def open_breaker(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    breaker = make(clock, **kwargs)
    failing_call(breaker, breaker.failure_threshold)
    assert breaker.state is OPEN
    return breaker


def half_open_breaker(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    breaker = open_breaker(clock, **kwargs)
    clock.advance(breaker.recovery_timeout)
    assert breaker.state is HALF_OPEN
    return breaker


# --- CLOSED → OPEN -----------------------------------------------------------------------------


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    failing_call(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.failure_count == 2
    failing_call(breaker)
    assert breaker.state is OPEN
    assert breaker.failure_count == 3


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    failing_call(breaker, 2)
    assert breaker.call_sync(ok) == "ok"
    assert breaker.failure_count == 0
    failing_call(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.get_failure_count() == 2


def test_open_rejects_without_calling_and_counts_rejections(clock: FakeClock) -> None:
    breaker = open_breaker(clock, failure_threshold=2, recovery_timeout=30.0, name="embed")
    calls = 0

    def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    clock.advance(10.0)
    error = rejected(breaker, counted)
    assert error.retry_after == pytest.approx(20.0)
    assert error.service_name == "embed"
    assert not error.retryable
    rejected(breaker, counted)
    assert calls == 0
    assert breaker.total_rejected == 2
    assert breaker.metrics()["total_rejected"] == 2


async def test_open_rejects_async_callers_too(clock: FakeClock) -> None:
    breaker = open_breaker(clock, failure_threshold=1)
    with pytest.raises(ServiceUnavailable):
        await breaker.call(aok)
    assert breaker.total_rejected == 1


# --- OPEN → HALF_OPEN → CLOSED / OPEN ------------------------------------------------------------


def test_state_reads_half_open_once_the_recovery_timeout_has_passed(clock: FakeClock) -> None:
    breaker = open_breaker(clock, recovery_timeout=30.0)
    clock.advance(29.999)
    assert breaker.state is OPEN
    assert breaker.get_state() is OPEN
    clock.advance(0.001)
    assert breaker.state is HALF_OPEN
    assert breaker.get_status()["state"] == "half_open"


def test_half_open_admits_exactly_one_trial(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)
    trial = breaker.acquire()
    assert trial.trial
    error = rejected(breaker)
    assert error.retry_after is None
    with pytest.raises(ServiceUnavailable):
        breaker.acquire()
    assert breaker.state is HALF_OPEN
    breaker.record_success(trial)
    assert breaker.state is CLOSED
    assert breaker.call_sync(ok) == "ok"


async def test_a_concurrent_second_call_is_rejected_while_the_trial_runs(
    clock: FakeClock,
) -> None:
    breaker = half_open_breaker(clock)
    inside, finish = asyncio.Event(), asyncio.Event()

    async def trial_call() -> str:
        inside.set()
        await finish.wait()
        return "trial"

    trial = asyncio.create_task(breaker.call(trial_call))
    await inside.wait()
    with pytest.raises(ServiceUnavailable):
        await breaker.call(aok)
    finish.set()
    assert await trial == "trial"
    assert breaker.state is CLOSED


def test_success_threshold_needs_sequential_successful_trials(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock, success_threshold=2)
    first = breaker.acquire()
    assert first.trial
    rejected(breaker)
    breaker.record_success(first)
    assert breaker.state is HALF_OPEN
    second = breaker.acquire()
    assert second.trial
    rejected(breaker)
    breaker.record_success(second)
    assert breaker.state is CLOSED


def test_success_threshold_progress_is_lost_when_a_trial_fails(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock, success_threshold=2, recovery_timeout=5.0)
    assert breaker.call_sync(ok) == "ok"
    failing_call(breaker)
    assert breaker.state is OPEN
    clock.advance(5.0)
    assert breaker.call_sync(ok) == "ok"
    assert breaker.state is HALF_OPEN  # one success again, not two
    assert breaker.call_sync(ok) == "ok"
    assert breaker.state is CLOSED


def test_a_failed_trial_reopens(clock: FakeClock, hook: Recorder) -> None:
    breaker = half_open_breaker(clock, recovery_timeout=30.0, hooks=(hook,))
    failing_call(breaker)
    assert breaker.state is OPEN
    assert rejected(breaker).retry_after == pytest.approx(30.0)
    assert hook.transitions[-1][:2] == ("half_open", "open")


async def test_a_trial_that_raises_cancelled_error_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)

    async def cancelled() -> str:
        raise asyncio.CancelledError

    failures_before = breaker.total_failures
    with pytest.raises(asyncio.CancelledError):
        await breaker.call(cancelled)
    assert breaker.state is HALF_OPEN
    assert breaker.total_failures == failures_before
    assert await breaker.call(aok) == "ok"
    assert breaker.state is CLOSED


async def test_a_cancelled_trial_task_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)
    inside = asyncio.Event()

    async def hang() -> str:
        inside.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(breaker.call(hang))
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is HALF_OPEN
    next_trial = breaker.acquire()
    assert next_trial.trial
    breaker.record_success(next_trial)
    assert breaker.state is CLOSED


def test_a_trial_ended_by_keyboard_interrupt_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)

    def interrupted() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call_sync(interrupted)
    assert breaker.acquire().trial


def test_a_trial_ended_by_a_non_counted_error_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)

    def invalid() -> str:
        raise ValidationError("bad request")

    failures_before = breaker.total_failures
    with pytest.raises(ValidationError):
        breaker.call_sync(invalid)
    assert breaker.state is HALF_OPEN
    assert breaker.total_failures == failures_before
    assert breaker.call_sync(ok) == "ok"
    assert breaker.state is CLOSED


def test_a_trial_ended_by_an_unexpected_exception_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 10.0, ConnectionError, clock=clock)

    def refused() -> str:
        raise ConnectionRefusedError("no")

    def buggy() -> str:
        raise KeyError("not a ConnectionError")

    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            breaker.call_sync(refused)
    assert breaker.state is OPEN
    clock.advance(10.0)
    with pytest.raises(KeyError):
        breaker.call_sync(buggy)
    assert breaker.state is HALF_OPEN
    assert breaker.acquire().trial


def test_a_trial_running_past_half_open_max_duration_reopens(
    clock: FakeClock, hook: Recorder
) -> None:
    breaker = half_open_breaker(
        clock, recovery_timeout=10.0, half_open_max_duration=5.0, hooks=(hook,)
    )
    stuck = breaker.acquire()
    assert stuck.trial
    clock.advance(4.999)
    rejected(breaker)
    assert breaker.state is HALF_OPEN
    clock.advance(0.001)
    rejected(breaker)
    assert breaker.state is OPEN
    assert hook.transitions[-1][:2] == ("half_open", "open")
    # the stuck trial finally returns: a stale outcome, it cannot close the breaker
    breaker.record_success(stuck)
    assert breaker.state is OPEN
    clock.advance(10.0)
    assert breaker.acquire().trial


# --- stale outcomes ----------------------------------------------------------------------------


def test_a_stale_success_cannot_close_an_open_breaker(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    early = breaker.acquire()
    failing_call(breaker, 2)
    assert breaker.state is OPEN
    successes = breaker.total_successes
    breaker.record_success(early)
    assert breaker.state is OPEN
    assert breaker.failure_count == 2
    assert breaker.total_successes == successes + 1  # counted in the totals only


def test_a_stale_failure_cannot_reopen_a_half_open_breaker(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    early = breaker.acquire()
    failing_call(breaker, 2)
    clock.advance(breaker.recovery_timeout)
    trial = breaker.acquire()
    assert trial.trial
    breaker.record_failure(early)
    assert breaker.state is HALF_OPEN
    rejected(breaker)  # the trial is still the only call in flight
    breaker.release(early)
    rejected(breaker)
    breaker.record_success(trial)
    assert breaker.state is CLOSED


def test_a_stale_failure_does_not_count_after_recovery(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    early = breaker.acquire()
    failing_call(breaker, 2)
    clock.advance(breaker.recovery_timeout)
    assert breaker.call_sync(ok) == "ok"
    assert breaker.state is CLOSED
    breaker.record_failure(early)
    breaker.record_failure(early)
    assert breaker.state is CLOSED
    assert breaker.failure_count == 0


def test_a_stale_trial_release_does_not_free_the_new_trial(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock, recovery_timeout=1.0)
    old_trial = breaker.acquire()
    breaker.record_failure(old_trial)
    clock.advance(1.0)
    new_trial = breaker.acquire()
    assert new_trial.trial
    assert new_trial.generation != old_trial.generation
    breaker.release(old_trial)
    rejected(breaker)


# --- rate thresholds ---------------------------------------------------------------------------


def test_failure_rate_over_a_count_window_waits_for_minimum_calls(
    clock: FakeClock, hook: Recorder
) -> None:
    breaker = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=50.0,
        window_size=4,
        minimum_calls=4,
        hooks=(hook,),
    )
    breaker.call_sync(ok)
    failing_call(breaker)
    breaker.call_sync(ok)
    assert breaker.state is CLOSED  # 1 of 3 calls failed, below minimum_calls
    failing_call(breaker)
    assert breaker.state is OPEN  # 2 of 4 = 50 %
    assert hook.transitions == [("closed", "open", "failure rate 50%")]


def test_failure_rate_below_threshold_stays_closed(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=100, failure_rate_threshold=50.0, window_size=4, minimum_calls=4
    )
    failing_call(breaker)
    for _ in range(4):
        breaker.call_sync(ok)
    failing_call(breaker)  # the first failure has left the 4-call window: 1 of 4
    assert breaker.state is CLOSED
    assert breaker.metrics()["failure_rate"] == pytest.approx(25.0)


@pytest.mark.parametrize(("pause", "expected"), [(0.0, OPEN), (10.0, CLOSED)])
def test_failure_rate_over_a_time_window_forgets_old_calls(
    clock: FakeClock, pause: float, expected: CircuitState
) -> None:
    breaker = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=50.0,
        window_type="time",
        window_size=10,
        minimum_calls=4,
    )
    failing_call(breaker, 3)
    assert breaker.state is CLOSED  # three calls, below minimum_calls
    clock.advance(pause)
    for _ in range(3):
        breaker.call_sync(ok)
    failing_call(breaker)
    # without the pause: 4 of 7 failed (57 %); after it: 1 of 4 (25 %)
    assert breaker.state is expected


def test_slow_call_rate_opens_the_breaker(clock: FakeClock, hook: Recorder) -> None:
    breaker = make(
        clock,
        failure_threshold=100,
        slow_call_rate_threshold=50.0,
        slow_call_duration=1.0,
        window_size=10,
        minimum_calls=4,
        hooks=(hook,),
    )

    def taking(seconds: float) -> Callable[[], str]:
        def call() -> str:
            clock.advance(seconds)
            return "ok"

        return call

    breaker.call_sync(taking(0.1))
    breaker.call_sync(taking(0.5))
    breaker.call_sync(taking(2.0))
    assert breaker.state is CLOSED  # 1 slow of 3: below minimum_calls
    breaker.call_sync(taking(1.0))  # exactly slow_call_duration counts as slow
    assert breaker.state is OPEN
    assert hook.transitions == [("closed", "open", "slow call rate 50%")]


async def test_slow_call_rate_counts_async_calls(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=100,
        slow_call_rate_threshold=100.0,
        slow_call_duration=1.0,
        minimum_calls=2,
    )

    async def slow() -> str:
        await clock.asleep(3.0)
        return "ok"

    await breaker.call(slow)
    assert breaker.state is CLOSED
    await breaker.call(slow)
    assert breaker.state is OPEN


# --- manual control ----------------------------------------------------------------------------


def test_force_open_rejects_everything_until_reset(clock: FakeClock, hook: Recorder) -> None:
    breaker = make(clock, hooks=(hook,))
    breaker.force_open()
    assert breaker.override is Override.FORCED_OPEN
    assert breaker.state is OPEN
    clock.advance(3600.0)
    assert rejected(breaker).retry_after is None
    assert breaker.get_status()["state"] == "open"
    assert any(isinstance(e, CallRejected) and e.reason == "forced open" for e in hook.events)
    breaker.reset()
    assert breaker.override is Override.NONE
    assert breaker.state is CLOSED
    assert breaker.call_sync(ok) == "ok"


def test_disable_lets_everything_through_and_records_nothing(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    breaker.disable()
    assert breaker.override is Override.DISABLED
    failing_call(breaker, 5)
    assert breaker.state is CLOSED
    assert breaker.failure_count == 0
    assert breaker.total_failures == 0
    breaker.reset()
    failing_call(breaker)
    assert breaker.state is OPEN


def test_disable_lets_calls_through_an_open_breaker(clock: FakeClock) -> None:
    breaker = open_breaker(clock, failure_threshold=1)
    breaker.disable()
    assert breaker.state is CLOSED
    assert breaker.call_sync(ok) == "ok"
    breaker.reset()
    assert breaker.state is CLOSED


def test_reset_closes_an_open_breaker(clock: FakeClock, hook: Recorder) -> None:
    breaker = open_breaker(clock, hooks=(hook,))
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.failure_count == 0
    assert hook.transitions[-1] == ("open", "closed", "manual reset")


@pytest.mark.parametrize("override", ["force_open", "disable"])
def test_reset_after_an_override_is_reported(
    clock: FakeClock, hook: Recorder, override: str
) -> None:
    breaker = make(clock, hooks=(hook,))
    getattr(breaker, override)()
    breaker.reset()
    assert hook.transitions[-1][1:] == ("closed", "manual reset")


# --- events ------------------------------------------------------------------------------------


def test_transitions_go_to_hooks_with_reasons(clock: FakeClock, hook: Recorder) -> None:
    breaker = make(clock, failure_threshold=2, recovery_timeout=5.0, name="chroma", hooks=(hook,))
    failing_call(breaker, 2)
    clock.advance(5.0)
    assert breaker.call_sync(ok) == "ok"
    assert [(old, new) for old, new, _ in hook.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    reasons = [reason for _, _, reason in hook.transitions]
    assert reasons[0] == "threshold reached"
    assert reasons[2] == "service recovered"
    transitions = [e for e in hook.events if isinstance(e, BreakerTransitioned)]
    assert all(e.name == "chroma" for e in transitions)
    assert transitions[0].at == pytest.approx(clock.wall() - 5.0)
    assert transitions[2].at == pytest.approx(clock.wall())


def test_rejections_are_reported(clock: FakeClock, hook: Recorder) -> None:
    breaker = open_breaker(clock, failure_threshold=1, name="embed", hooks=(hook,))
    rejected(breaker)
    assert CallRejected("embed", "breaker", "circuit open") in hook.events


def test_a_raising_hook_does_not_break_the_call(clock: FakeClock, hook: Recorder) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    breaker = make(clock, failure_threshold=1, recovery_timeout=1.0, hooks=(broken, hook))
    failing_call(breaker)
    assert breaker.state is OPEN
    rejected(breaker)
    clock.advance(1.0)
    assert breaker.call_sync(ok) == "ok"
    assert breaker.state is CLOSED
    assert len(hook.transitions) == 3


# --- status ------------------------------------------------------------------------------------


def test_get_status_has_exactly_the_seed_001_keys(clock: FakeClock) -> None:
    breaker = make(clock, name="chroma")
    status = breaker.get_status()
    assert set(status) == {"service", "state", "failure_count", "last_failure", "last_state_change"}
    assert status["service"] == "chroma"
    assert status["state"] == "closed"
    assert status["failure_count"] == 0
    assert status["last_failure"] is None
    assert status["last_state_change"] == "2025-11-15T10:30:45Z"


def test_get_status_after_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, name="chroma")
    clock.advance(5.0)
    failing_call(breaker)
    status = breaker.get_status()
    assert status["failure_count"] == 1
    assert status["last_failure"] == "2025-11-15T10:30:50Z"
    assert status["last_state_change"] == "2025-11-15T10:30:45Z"
    clock.advance(60.0)
    failing_call(breaker)
    status = breaker.get_status()
    assert status["state"] == "open"
    assert ISO_Z.match(status["last_failure"])
    assert ISO_Z.match(status["last_state_change"])
    assert status["last_failure"] == status["last_state_change"] == "2025-11-15T10:31:50Z"


# --- the seed-000 surface ----------------------------------------------------------------------


async def test_call_awaits_an_async_function_with_arguments(clock: FakeClock) -> None:
    breaker = make(clock)

    async def add(a: int, b: int = 0) -> int:
        await asyncio.sleep(0)
        return a + b

    assert await breaker.call(add, 1, b=2) == 3


async def test_call_accepts_a_sync_function(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    assert await breaker.call(lambda x: x * 2, 21) == 42
    with pytest.raises(ServiceUnavailableError):
        await breaker.call(fail)
    assert breaker.get_state() is OPEN


def test_call_sync_and_getters(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=4, recovery_timeout=12.0, clock=clock)
    assert breaker.failure_threshold == 4
    assert breaker.recovery_timeout == 12.0
    assert breaker.call_sync(lambda a, b: a - b, 5, b=3) == 2
    assert breaker.get_state() is CLOSED
    assert breaker.get_failure_count() == 0


def test_expected_exception_filters_what_counts(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 10.0, expected_exception=ConnectionError, clock=clock)

    def bad_value() -> str:
        raise ValueError("caller bug")

    def refused() -> str:
        raise ConnectionRefusedError("refused")

    for _ in range(5):
        with pytest.raises(ValueError, match="caller bug"):
            breaker.call_sync(bad_value)
    assert breaker.get_state() is CLOSED
    assert breaker.get_failure_count() == 0
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            breaker.call_sync(refused)
    assert breaker.get_state() is OPEN


def test_expected_exception_accepts_a_tuple(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 10.0, (KeyError, TimeoutError), clock=clock)

    def raising(error: BaseException) -> str:
        raise error

    with pytest.raises(KeyError):
        breaker.call_sync(raising, KeyError("k"))
    with pytest.raises(TimeoutError):
        breaker.call_sync(raising, TimeoutError())
    assert breaker.get_state() is OPEN


def test_non_retryable_service_errors_do_not_count(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    def invalid() -> str:
        raise ValidationError("bad")

    with pytest.raises(ValidationError):
        breaker.call_sync(invalid)
    assert breaker.state is CLOSED


def test_a_service_shedding_load_does_not_trip_the_breaker(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    def shed() -> str:
        raise ResourceExhausted("busy: come back later", retry_after=2.0)

    for _ in range(3):
        with pytest.raises(ResourceExhausted):
            breaker.call_sync(shed)
    assert breaker.state is CLOSED

    def out_of_gpus() -> str:
        raise GpuUnavailable("no free GPU")  # 503: the service cannot serve at all

    with pytest.raises(GpuUnavailable):
        breaker.call_sync(out_of_gpus)
    assert breaker.state is OPEN


def test_counts_as_failure_replaces_the_rule(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, counts_as_failure=lambda e: True)

    def invalid() -> str:
        raise ValidationError("bad")

    with pytest.raises(ValidationError):
        breaker.call_sync(invalid)
    assert breaker.state is OPEN


def test_config_object_is_accepted(clock: FakeClock) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=2.0)
    breaker = CircuitBreaker(config=config, clock=clock)
    assert breaker.config is config
    failing_call(breaker)
    assert breaker.state is OPEN
    with pytest.raises(TypeError):
        CircuitBreaker(config=config, success_threshold=2)


# --- bad configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"failure_threshold": 1.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
        ({"recovery_timeout": math.nan}, "recovery_timeout"),
        ({"recovery_timeout": math.inf}, "recovery_timeout"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"half_open_max_duration": 0}, "half_open_max_duration"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 150}, "failure_rate_threshold"),
        ({"slow_call_rate_threshold": -5}, "slow_call_rate_threshold"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"window_type": "x"}, "window_type"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CircuitBreaker(**kwargs)
    with pytest.raises(ValueError, match=field):
        CircuitBreakerConfig(**kwargs)


def test_recovery_timeout_zero_is_allowed(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=0.0)
    failing_call(breaker)
    # no cool-down: the very next read is already HALF_OPEN
    assert breaker.state is HALF_OPEN
    assert breaker.acquire().trial


# --- known bugs --------------------------------------------------------------------------------


class _InterleavedBreaker(CircuitBreaker):
    """Runs ``between`` right after the next read of ``_state``.

    That is what another thread may do between ``acquire()``'s unlocked read of
    the state and its read of the permit on the fast path.
    """

    between: Callable[[], None] | None = None

    @property  # type: ignore[override]
    def _state(self) -> CircuitState:
        value: CircuitState = self.__dict__["_state_value"]
        step, self.between = self.between, None
        if step is not None:
            step()
        return value

    @_state.setter
    def _state(self, value: CircuitState) -> None:
        self.__dict__["_state_value"] = value


def test_a_caller_that_saw_closed_late_cannot_free_the_trial_slot(clock: FakeClock) -> None:
    breaker = _InterleavedBreaker(
        failure_threshold=1, recovery_timeout=0.0, success_threshold=2, clock=clock
    )
    trials: list[Permit] = []

    def other_thread() -> None:
        breaker.record_failure(breaker.acquire())  # CLOSED -> OPEN
        trials.append(breaker.acquire())  # OPEN -> HALF_OPEN, the one trial

    breaker.between = other_thread
    late = breaker.acquire()
    assert trials[0].trial
    assert breaker.state is HALF_OPEN
    breaker.record_success(late)  # the late caller's call went well
    with pytest.raises(ServiceUnavailable):
        breaker.acquire()  # the trial is still in flight: no second one


def test_hooks_see_transitions_in_the_order_they_happened(clock: FakeClock) -> None:
    holding, overtaken, release = threading.Event(), threading.Event(), threading.Event()
    seen = Recorder()

    def slow_sink(event: Event) -> None:  # e.g. a log handler writing to a slow disk
        if not isinstance(event, BreakerTransitioned):
            return
        if not holding.is_set():
            holding.set()
            release.wait(timeout=5.0)
        else:
            overtaken.set()

    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=0.0, clock=clock, hooks=(slow_sink, seen)
    )

    def failing_thread() -> None:
        with contextlib.suppress(ServiceUnavailableError):
            breaker.call_sync(fail)

    first = threading.Thread(target=failing_thread)
    first.start()
    assert holding.wait(timeout=5.0)  # closed->open is on its way to the hooks
    second = threading.Thread(target=breaker.call_sync, args=(ok,))
    second.start()  # open->half_open->closed
    # with the bug, a later event overtakes at once; half a second is ample to see it
    if overtaken.wait(timeout=0.5):  # a later event reached the hooks first: let it finish
        second.join(timeout=5.0)
    release.set()
    first.join(timeout=5.0)
    second.join(timeout=5.0)
    assert breaker.state is CLOSED
    assert [(old, new) for old, new, _ in seen.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
