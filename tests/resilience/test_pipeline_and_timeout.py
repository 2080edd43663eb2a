"""Pipeline composition (outermost first) and Timeout (async cancels, sync publishes a deadline)."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from servicegrid.errors import (
    DeadlineExceeded,
    ServiceUnavailable,
    ServiceUnavailableError,
)
from servicegrid.resilience import (
    CircuitBreaker,
    ConstantBackoff,
    Pipeline,
    Policy,
    Retry,
    Timeout,
    current_deadline,
    deadline_scope,
    remaining,
)
from servicegrid.testing import FakeClock

T = TypeVar("T")


class Recording:
    """A policy that logs when the call enters and leaves it."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def invoke(self, inner: Callable[[], T]) -> T:
        self.log.append(f"{self.name}>")
        try:
            return inner()
        finally:
            self.log.append(f"<{self.name}")

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        self.log.append(f"{self.name}>")
        try:
            return await inner()
        finally:
            self.log.append(f"<{self.name}")

    def get_status(self) -> dict[str, Any]:
        return {"name": self.name, "entered": sum(e == f"{self.name}>" for e in self.log)}


# --- composition -------------------------------------------------------------------------------


def test_policies_run_outermost_first() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recording("a", log), Recording("b", log), Recording("c", log))

    def fn() -> str:
        log.append("fn")
        return "done"

    assert pipeline.call(fn) == "done"
    assert log == ["a>", "b>", "c>", "fn", "<c", "<b", "<a"]


async def test_policies_run_outermost_first_async() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recording("a", log), Recording("b", log))

    async def fn() -> str:
        log.append("fn")
        await asyncio.sleep(0)
        return "done"

    assert await pipeline.acall(fn) == "done"
    assert log == ["a>", "b>", "fn", "<b", "<a"]


def test_the_recording_policy_is_a_policy() -> None:
    assert isinstance(Recording("x", []), Policy)


def test_call_passes_args_and_kwargs() -> None:
    pipeline = Pipeline(Recording("a", []))

    def join(*parts: str, sep: str = "-") -> str:
        return sep.join(parts)

    assert pipeline.call(join, "x", "y", sep="+") == "x+y"
    assert pipeline.call(join) == ""
    assert Pipeline().call(join, "only") == "only"


async def test_acall_passes_args_and_kwargs() -> None:
    async def power(base: int, *, exp: int = 1) -> int:
        return int(base**exp)

    assert await Pipeline(Recording("a", [])).acall(power, 2, exp=10) == 1024
    assert await Pipeline().acall(power, 3) == 3


async def test_acall_calls_the_coroutine_function_anew_on_each_retry() -> None:
    clock = FakeClock()
    created: list[str] = []

    async def flaky(tag: str) -> str:
        created.append(tag)
        if len(created) < 3:
            raise ServiceUnavailableError(tag)
        return tag

    pipeline = Pipeline(Retry(attempts=3, backoff=ConstantBackoff(0.5), clock=clock))
    assert await pipeline.acall(flaky, "x") == "x"
    assert len(created) == 3
    assert clock.sleeps == [0.5, 0.5]


def test_wrap_decorates_a_sync_function() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recording("p", log))

    @pipeline.wrap
    def greet(name: str, *, punct: str = "!") -> str:
        """Say hello."""
        return f"hi {name}{punct}"

    assert greet("ada", punct="?") == "hi ada?"
    assert greet.__name__ == "greet"
    assert greet.__doc__ == "Say hello."
    assert not inspect.iscoroutinefunction(greet)
    assert log == ["p>", "<p"]


async def test_wrap_decorates_an_async_function() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recording("p", log))

    @pipeline.wrap
    async def greet(name: str) -> str:
        await asyncio.sleep(0)
        return f"hi {name}"

    assert inspect.iscoroutinefunction(greet)
    assert greet.__name__ == "greet"
    assert await greet("ada") == "hi ada"
    assert log == ["p>", "<p"]


def test_get_status_aggregates_the_policies_that_report() -> None:
    log: list[str] = []
    first = CircuitBreaker(name="embed", clock=FakeClock())
    second = CircuitBreaker(name="rerank", clock=FakeClock())
    pipeline = Pipeline(
        Recording("r", log), Retry(attempts=2, clock=FakeClock()), first, second, name="p"
    )
    pipeline.call(lambda: None)
    status = pipeline.get_status()
    assert status["Recording"] == {"name": "r", "entered": 1}
    assert status["CircuitBreaker"] == first.get_status()
    breakers = [v for k, v in status.items() if k.startswith("CircuitBreaker")]
    assert [b["service"] for b in breakers] == ["embed", "rerank"]
    assert "Retry" not in status
    assert len(status) == 3


def test_policies_and_name_are_exposed() -> None:
    a, b = Recording("a", []), Recording("b", [])
    pipeline = Pipeline(a, b, name="embed")
    assert pipeline.policies == (a, b)
    assert pipeline.name == "embed"
    assert "Recording" in repr(pipeline)


@pytest.mark.parametrize(
    "thing", [object(), 42, "retry", lambda: None, None], ids=["object", "int", "str", "fn", "none"]
)
def test_a_non_policy_is_refused(thing: object) -> None:
    with pytest.raises(TypeError):
        Pipeline(Recording("ok", []), thing)  # type: ignore[arg-type]


def test_retry_outside_breaker_stops_when_the_breaker_opens() -> None:
    clock = FakeClock()
    calls = 0

    def down() -> str:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError("down")

    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=clock)
    pipeline = Pipeline(Retry(attempts=5, backoff=ConstantBackoff(1.0), clock=clock), breaker)
    # two real failures open the breaker; then the retry stops (a rejection is not retryable)
    with pytest.raises(ServiceUnavailableError):
        pipeline.call(down)
    assert calls == 2
    assert breaker.total_failures == 2
    assert 1 <= len(clock.sleeps) <= 2
    assert set(clock.sleeps) == {1.0}
    with pytest.raises(ServiceUnavailable):
        pipeline.call(down)
    assert calls == 2


def test_timeout_outside_retry_bounds_the_retries() -> None:
    clock = FakeClock()
    calls = 0

    def down() -> str:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError("down")

    pipeline = Pipeline(
        Timeout(2.5, clock=clock),
        Retry(attempts=10, backoff=ConstantBackoff(1.0), clock=clock),
    )
    with pytest.raises(ServiceUnavailableError):
        pipeline.call(down)
    assert clock.sleeps == [1.0, 1.0]
    assert calls == 3


# --- Timeout, async ----------------------------------------------------------------------------


async def test_async_timeout_cancels_a_slow_call() -> None:
    cancelled = False

    async def slow() -> str:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled = True
            raise
        return "late"

    with pytest.raises(DeadlineExceeded) as caught:
        await Timeout(0.05, name="embed").ainvoke(slow)
    assert cancelled
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert caught.value.service == "embed"
    assert caught.value.retryable


async def test_async_timeout_returns_a_fast_result() -> None:
    async def fast() -> str:
        await asyncio.sleep(0)
        return "fast"

    assert await Timeout(10.0).ainvoke(fast) == "fast"


async def test_a_timeout_error_from_the_call_itself_is_not_converted() -> None:
    async def own_timeout() -> str:
        await asyncio.sleep(0)
        raise TimeoutError("the call's own timeout")

    with pytest.raises(TimeoutError, match="the call's own timeout") as caught:
        await Timeout(10.0).ainvoke(own_timeout)
    assert not isinstance(caught.value, DeadlineExceeded)


async def test_async_timeout_publishes_the_deadline() -> None:
    seen: list[float | None] = []

    async def look() -> None:
        seen.append(remaining())

    await Timeout(5.0).ainvoke(look)
    assert seen[0] is not None
    assert 0 < seen[0] <= 5.0
    assert current_deadline() is None


async def test_async_timeout_refuses_to_start_past_the_deadline() -> None:
    clock = FakeClock()
    started = False

    async def never() -> None:
        nonlocal started
        started = True

    with deadline_scope(clock.now() - 1.0), pytest.raises(DeadlineExceeded):
        await Timeout(5.0, clock=clock).ainvoke(never)
    assert not started


async def test_nested_async_timeouts_the_earlier_wins() -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    async def inner() -> str:
        return await Timeout(10.0).ainvoke(slow)

    with pytest.raises(DeadlineExceeded):
        await Timeout(0.05).ainvoke(inner)


async def test_async_pipeline_with_timeout() -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    pipeline = Pipeline(Recording("r", []), Timeout(0.05))
    with pytest.raises(DeadlineExceeded):
        await pipeline.acall(slow)


# --- Timeout, sync -----------------------------------------------------------------------------


def test_sync_timeout_publishes_the_deadline() -> None:
    clock = FakeClock()
    seen = Timeout(5.0, clock=clock).invoke(lambda: remaining(clock))
    assert seen is not None
    assert seen <= 5.0
    assert seen == 5.0
    assert remaining(clock) is None


def test_sync_timeout_refuses_to_start_past_the_deadline() -> None:
    clock = FakeClock()
    calls = 0

    def fn() -> str:
        nonlocal calls
        calls += 1
        return "ran"

    with deadline_scope(clock.now() + 1.0):
        clock.advance(1.0)
        with pytest.raises(DeadlineExceeded):
            Timeout(5.0, clock=clock).invoke(fn)
    assert calls == 0
    assert Timeout(5.0, clock=clock).invoke(fn) == "ran"


def test_nested_sync_timeouts_the_earlier_wins() -> None:
    clock = FakeClock()

    def look() -> float | None:
        return remaining(clock)

    short_outside = Timeout(1.0, clock=clock).invoke(
        lambda: Timeout(10.0, clock=clock).invoke(look)
    )
    short_inside = Timeout(10.0, clock=clock).invoke(lambda: Timeout(1.0, clock=clock).invoke(look))
    assert short_outside == 1.0
    assert short_inside == 1.0


def test_sync_timeout_inside_a_deadline_scope_keeps_the_earlier_one() -> None:
    clock = FakeClock()
    with deadline_scope(clock.now() + 0.5):
        assert Timeout(5.0, clock=clock).invoke(lambda: remaining(clock)) == 0.5
    with deadline_scope(clock.now() + 50.0):
        assert Timeout(5.0, clock=clock).invoke(lambda: remaining(clock)) == 5.0


def test_sync_timeout_restores_the_deadline_after_an_error() -> None:
    clock = FakeClock()

    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Timeout(5.0, clock=clock).invoke(boom)
    assert current_deadline() is None


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf])
def test_timeout_rejects_bad_seconds(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        Timeout(seconds)
