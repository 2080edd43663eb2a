"""Retry: a pure plan, bounded by attempts, deadline and budget; thin sync and async shells."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegrid.errors import (
    DeadlineExceeded,
    MaxRetriesExceededError,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.resilience import deadline_scope, remaining
from servicegrid.resilience.backoff import ConstantBackoff, ExponentialBackoff, Jitter
from servicegrid.resilience.budget import RetryBudget
from servicegrid.resilience.events import Event, RetryGaveUp, RetryScheduled
from servicegrid.resilience.retry import GiveUp, Retry, RetryState, Sleep
from servicegrid.testing import FakeClock, set_active, set_testing

NO_JITTER = ExponentialBackoff(initial=0.1, max=5.0, factor=2.0, jitter=Jitter.NONE)


def state(attempt: int, deadline: float | None = None) -> RetryState:
    return RetryState(started_at=0.0, deadline=deadline, attempt=attempt)


class Flaky:
    """Fails ``failures`` times with ``error()``, then returns ``"ok"``; counts its calls."""

    def __init__(
        self,
        failures: int,
        error: Callable[[], BaseException] = lambda: ServiceUnavailableError("down"),
    ) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            error = self.error()
            self.raised.append(error)
            raise error
        return "ok"

    async def acall(self) -> str:
        await asyncio.sleep(0)
        return self()


# --- the plan ----------------------------------------------------------------------------------


def test_plan_gives_up_on_a_non_retryable_error() -> None:
    retry = Retry(attempts=5)
    assert retry.plan(state(1), ValidationError("bad"), 0.0) == GiveUp("not_retryable")
    assert retry.plan(state(1), ValueError("foreign"), 0.0) == GiveUp("not_retryable")


def test_plan_gives_up_when_attempts_are_spent() -> None:
    retry = Retry(attempts=3, backoff=ConstantBackoff(0.5))
    error = ServiceUnavailableError()
    assert retry.plan(state(1), error, 0.0) == Sleep(0.5)
    assert retry.plan(state(2), error, 0.0) == Sleep(0.5)
    assert retry.plan(state(3), error, 0.0) == GiveUp("attempts")


def test_plan_is_pure() -> None:
    clock = FakeClock()
    retry = Retry(attempts=4, backoff=NO_JITTER, clock=clock)
    before = state(2, deadline=2_000.0)
    first = retry.plan(before, ServiceUnavailableError(), clock.now())
    second = retry.plan(before, ServiceUnavailableError(), clock.now())
    assert first == second == Sleep(0.2)
    assert before == state(2, deadline=2_000.0)
    assert clock.sleeps == []
    assert clock.now() == 1_000.0


def test_retry_after_hint_lengthens_the_delay() -> None:
    retry = Retry(attempts=3, backoff=ConstantBackoff(0.5))
    assert retry.plan(state(1), ServiceUnavailableError(retry_after=3.0), 0.0) == Sleep(3.0)
    # a hint shorter than the backoff does not shorten it
    assert retry.plan(state(1), ServiceUnavailableError(retry_after=0.1), 0.0) == Sleep(0.5)


def test_retry_after_hint_is_ignored_when_told() -> None:
    retry = Retry(attempts=3, backoff=ConstantBackoff(0.5), respect_retry_after=False)
    assert retry.plan(state(1), ServiceUnavailableError(retry_after=30.0), 0.0) == Sleep(0.5)


def test_retry_after_hint_above_the_cap_gives_up() -> None:
    retry = Retry(attempts=3, backoff=ConstantBackoff(0.5), max_retry_after=10.0)
    decision = retry.plan(state(1), ServiceUnavailableError(retry_after=11.0), 0.0)
    assert isinstance(decision, GiveUp)
    assert retry.plan(state(1), ServiceUnavailableError(retry_after=10.0), 0.0) == Sleep(10.0)


def test_a_delay_ending_past_the_deadline_gives_up() -> None:
    retry = Retry(attempts=10, backoff=ConstantBackoff(2.0))
    assert retry.plan(state(1, deadline=101.0), ServiceUnavailableError(), 100.0) == GiveUp(
        "deadline"
    )
    assert retry.plan(state(1, deadline=103.0), ServiceUnavailableError(), 100.0) == Sleep(2.0)
    # a Retry-After hint counts against the deadline too
    hinted = ServiceUnavailableError(retry_after=5.0)
    assert retry.plan(state(1, deadline=103.0), hinted, 100.0) == GiveUp("deadline")


def test_plan_gives_up_when_the_budget_is_spent() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0, clock=clock)  # one retry
    retry = Retry(attempts=10, backoff=ConstantBackoff(0.5), budget=budget, clock=clock)
    assert retry.plan(state(1), ServiceUnavailableError(), clock.now()) == Sleep(0.5)
    assert retry.plan(state(2), ServiceUnavailableError(), clock.now()) == GiveUp("budget")


def test_plan_uses_a_custom_predicate() -> None:
    retry = Retry(attempts=3, backoff=ConstantBackoff(1.0), on=lambda e: isinstance(e, KeyError))
    assert retry.plan(state(1), KeyError("x"), 0.0) == Sleep(1.0)
    assert retry.plan(state(1), ServiceUnavailableError(), 0.0) == GiveUp("not_retryable")


# --- the budget --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "min_per_second", "ttl", "requests", "allowed"),
    [
        (0.5, 0.2, 10.0, 4, 4),  # 0.2 * 10 + 0.5 * 4
        (0.0, 0.1, 10.0, 100, 1),
        (0.2, 0.0, 5.0, 10, 2),
        (0.0, 0.0, 1.0, 50, 0),
        (1.0, 1.0, 3.0, 2, 5),
    ],
)
def test_budget_allows_floor_plus_ratio_of_requests(
    ratio: float, min_per_second: float, ttl: float, requests: int, allowed: int
) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=ratio, min_per_second=min_per_second, ttl=ttl, clock=clock)
    for _ in range(requests):
        budget.record_request()
    granted = 0
    while budget.try_withdraw():
        granted += 1
        assert granted <= allowed
    assert granted == allowed
    assert budget.get_status()["retries"] == allowed


def test_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, ttl=10.0, clock=clock)  # two retries
    assert budget.try_withdraw()
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    clock.advance(10.0)
    assert budget.try_withdraw()
    assert budget.get_status() == {"requests": 0, "retries": 1, "retries_allowed": 2.0}


def test_retry_records_one_request_per_call() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, ttl=60.0, clock=clock)
    retry = Retry(attempts=5, backoff=ConstantBackoff(0.1), budget=budget, clock=clock)
    flaky = Flaky(failures=10)
    with pytest.raises(ServiceUnavailableError):
        retry.invoke(flaky)
    # one call earned one retry: two attempts, then GiveUp("budget")
    assert flaky.calls == 2
    assert budget.get_status()["requests"] == 1


@pytest.mark.parametrize(
    "kwargs", [{"ratio": -0.1}, {"min_per_second": float("nan")}, {"ttl": 0.0}, {"ttl": -1.0}]
)
def test_budget_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryBudget(**kwargs)


# --- invoke / ainvoke --------------------------------------------------------------------------


def test_invoke_retries_then_succeeds_with_backoff_sleeps() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=3)
    retry = Retry(attempts=4, backoff=NO_JITTER, clock=clock)
    assert retry.invoke(flaky) == "ok"
    assert flaky.calls == 4
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


async def test_ainvoke_retries_then_succeeds_calling_the_function_anew() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=2)
    retry = Retry(attempts=3, backoff=NO_JITTER, clock=clock)
    assert await retry.ainvoke(flaky.acall) == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == pytest.approx([0.1, 0.2])


def test_invoke_raises_the_last_error_when_attempts_are_spent() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    retry = Retry(attempts=3, backoff=ConstantBackoff(1.0), clock=clock)
    with pytest.raises(ServiceUnavailableError) as caught:
        retry.invoke(flaky)
    assert caught.value is flaky.raised[-1]
    assert flaky.calls == 3
    assert clock.sleeps == [1.0, 1.0]


def test_invoke_stops_at_once_on_a_non_retryable_error() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10, error=lambda: ValidationError("bad"))
    with pytest.raises(ValidationError):
        Retry(attempts=5, clock=clock).invoke(flaky)
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_wrap_exhausted_raises_max_retries_exceeded_from_the_last_error() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    retry = Retry(attempts=3, backoff=ConstantBackoff(0.5), wrap_exhausted=True, clock=clock)
    with pytest.raises(MaxRetriesExceededError) as caught:
        retry.invoke(flaky)
    assert caught.value.attempts == 3
    assert caught.value.last_error is flaky.raised[-1]
    assert caught.value.__cause__ is flaky.raised[-1]


async def test_wrap_exhausted_on_deadline_async() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    retry = Retry(
        attempts=10, backoff=ConstantBackoff(0.6), timeout=1.0, wrap_exhausted=True, clock=clock
    )
    with pytest.raises(MaxRetriesExceededError) as caught:
        await retry.ainvoke(flaky.acall)
    # attempt 1, sleep 0.6, attempt 2, then 0.6 more would end at 1.2 > 1.0
    assert caught.value.attempts == 2
    assert caught.value.__cause__ is flaky.raised[-1]
    assert clock.sleeps == [0.6]


def test_wrap_exhausted_leaves_non_retryable_errors_alone() -> None:
    flaky = Flaky(failures=10, error=lambda: ValidationError("bad"))
    with pytest.raises(ValidationError):
        Retry(attempts=3, wrap_exhausted=True, clock=FakeClock()).invoke(flaky)


async def test_cancelled_error_is_never_retried() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10, error=asyncio.CancelledError)
    retry = Retry(attempts=5, on=lambda e: True, clock=clock)
    with pytest.raises(asyncio.CancelledError):
        await retry.ainvoke(flaky.acall)
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_keyboard_interrupt_is_never_retried() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10, error=KeyboardInterrupt)
    retry = Retry(attempts=5, on=lambda e: True, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        retry.invoke(flaky)
    assert flaky.calls == 1
    assert clock.sleeps == []


async def test_a_real_task_cancellation_stops_the_retry_loop() -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    retry = Retry(attempts=5, on=lambda e: True, clock=clock)
    task = asyncio.create_task(retry.ainvoke(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleeps == []


# --- the deadline ------------------------------------------------------------------------------


def test_invoke_publishes_the_deadline() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def inner() -> str:
        seen.append(remaining(clock))
        clock.advance(0.25)
        raise ServiceUnavailableError()

    retry = Retry(attempts=3, backoff=ConstantBackoff(0.5), timeout=5.0, clock=clock)
    with pytest.raises(ServiceUnavailableError):
        retry.invoke(inner)
    assert seen == pytest.approx([5.0, 4.25, 3.5])
    assert remaining(clock) is None


def test_an_outer_deadline_that_is_earlier_wins() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    retry = Retry(attempts=10, backoff=ConstantBackoff(1.0), timeout=60.0, clock=clock)
    with deadline_scope(clock.now() + 2.5), pytest.raises(ServiceUnavailableError):
        retry.invoke(flaky)
    # sleeps end at +1 and +2; a third would end at +3, past the outer deadline at +2.5
    assert clock.sleeps == [1.0, 1.0]
    assert flaky.calls == 3


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(min_value=1, max_value=30),
    initial=st.floats(min_value=0.0, max_value=5.0),
    spread=st.floats(min_value=0.0, max_value=20.0),
    jitter=st.sampled_from(list(Jitter)),
    timeout=st.floats(min_value=0.01, max_value=100.0),
    work=st.floats(min_value=0.0, max_value=2.0),
    hint=st.one_of(st.none(), st.floats(min_value=0.0, max_value=30.0)),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_no_sleep_overruns_the_deadline(
    attempts: int,
    initial: float,
    spread: float,
    jitter: Jitter,
    timeout: float,
    work: float,
    hint: float | None,
    seed: int,
) -> None:
    clock = FakeClock()
    backoff = ExponentialBackoff(initial=initial, max=initial + spread, jitter=jitter)
    retry = Retry(
        attempts=attempts, backoff=backoff, timeout=timeout, clock=clock, rng=random.Random(seed)
    )
    calls = 0

    def inner() -> None:
        nonlocal calls
        calls += 1
        clock.advance(work)  # the attempt itself takes time too
        raise ServiceUnavailableError(retry_after=hint)

    with pytest.raises(ServiceUnavailableError):
        retry.invoke(inner)
    assert calls <= attempts
    assert len(clock.sleeps) == calls - 1
    assert sum(clock.sleeps) < timeout
    # every sleep ended before the deadline, counting the time the attempts took
    assert sum(clock.sleeps) + work * (calls - 1) < timeout


# --- test mode and the global switch -----------------------------------------------------------


def test_testing_mode_makes_one_attempt_and_no_sleeps() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    with set_testing(True, attempts=1), pytest.raises(ServiceUnavailableError):
        Retry(attempts=5, clock=clock).invoke(flaky)
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_testing_mode_with_zero_keeps_the_attempts_and_zeroes_the_backoff() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    with set_testing(True, attempts=0), pytest.raises(ServiceUnavailableError):
        Retry(attempts=3, backoff=ConstantBackoff(9.0), clock=clock).invoke(flaky)
    assert flaky.calls == 3
    assert clock.sleeps == [0.0, 0.0]


def test_testing_mode_is_restored_on_exit() -> None:
    clock = FakeClock()
    with set_testing(True, attempts=1):
        pass
    flaky = Flaky(failures=2)
    assert Retry(attempts=3, backoff=ConstantBackoff(1.0), clock=clock).invoke(flaky) == "ok"
    assert clock.sleeps == [1.0, 1.0]


async def test_inactive_retries_make_one_attempt() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=10)
    with set_active(False):
        with pytest.raises(ServiceUnavailableError):
            Retry(attempts=5, clock=clock).invoke(flaky)
        with pytest.raises(ServiceUnavailableError):
            await Retry(attempts=5, clock=clock).ainvoke(flaky.acall)
    assert flaky.calls == 2
    assert clock.sleeps == []


# --- events ------------------------------------------------------------------------------------


def test_events_report_each_retry_and_the_end() -> None:
    clock = FakeClock()
    events: list[Event] = []
    flaky = Flaky(failures=10)
    retry = Retry(
        attempts=3,
        backoff=ConstantBackoff(0.5),
        name="embed",
        clock=clock,
        hooks=(events.append,),
    )
    with pytest.raises(ServiceUnavailableError):
        retry.invoke(flaky)
    assert events == [
        RetryScheduled("embed", 1, 3, 0.5, flaky.raised[0]),
        RetryScheduled("embed", 2, 3, 0.5, flaky.raised[1]),
        RetryGaveUp("embed", 3, 3, "attempts", flaky.raised[2]),
    ]


def test_give_up_event_names_the_reason() -> None:
    events: list[Event] = []
    errors = iter([ServiceUnavailableError("down"), ValidationError("bad")])

    def inner() -> str:
        raise next(errors)

    retry = Retry(
        attempts=3, backoff=ConstantBackoff(0.1), clock=FakeClock(), hooks=(events.append,)
    )
    with pytest.raises(ValidationError):
        retry.invoke(inner)
    assert [type(e) for e in events] == [RetryScheduled, RetryGaveUp]
    assert isinstance(events[1], RetryGaveUp)
    assert (events[1].attempt, events[1].reason) == (2, "not_retryable")


def test_a_raising_hook_does_not_break_the_call() -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    clock = FakeClock()
    flaky = Flaky(failures=1)
    retry = Retry(attempts=2, backoff=ConstantBackoff(0.1), clock=clock, hooks=(broken,))
    assert retry.invoke(flaky) == "ok"


# --- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": -1}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"max_retry_after": -1.0}, "max_retry_after"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_deadline_exceeded_is_retried_as_the_table_says() -> None:
    clock = FakeClock()
    flaky = Flaky(failures=1, error=DeadlineExceeded)
    assert Retry(attempts=2, backoff=ConstantBackoff(0.1), clock=clock).invoke(flaky) == "ok"
    assert flaky.calls == 2
