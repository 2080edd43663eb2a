"""Token bucket and sliding window: admission, waiting, rejection, fairness and bounds."""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegrid.errors import RateLimited
from servicegrid.resilience.deadline import deadline_scope
from servicegrid.resilience.events import CallRejected, Event
from servicegrid.resilience.ratelimit import RateLimitConfig, SlidingWindow, TokenBucket
from servicegrid.testing import FakeClock


class FrozenClock(FakeClock):
    """Records sleeps without moving time, so each sleep shows when a waiter was scheduled."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


# --- token bucket -----------------------------------------------------------------------------


def test_bucket_starts_full_and_refuses_when_empty() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, clock=FakeClock())
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_rate_up_to_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert bucket.try_acquire(3)
    clock.advance(0.5)
    assert bucket.available() == 1.0
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.advance(100.0)
    assert bucket.available() == 3.0


def test_bucket_wait_mode_sleeps_for_the_deficit() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4.0, burst=1, clock=clock)
    bucket.acquire()
    bucket.acquire()
    bucket.acquire()
    assert clock.sleeps == [0.25, 0.25]
    assert bucket.get_status()["total_waited_seconds"] == 0.5


def test_bucket_fail_mode_raises_with_retry_after_and_emits() -> None:
    events: list[Event] = []
    bucket = TokenBucket(
        4.0, 1, mode="fail", name="embed", clock=FakeClock(), hooks=[events.append]
    )
    bucket.acquire()
    with pytest.raises(RateLimited) as info:
        bucket.acquire()
    assert info.value.retry_after == 0.25
    assert info.value.service == "embed"
    assert events == [CallRejected(name="embed", policy="rate_limit", reason="fail_fast")]
    assert bucket.get_status()["total_rejected"] == 1


def test_bucket_waits_within_max_wait_and_refuses_beyond() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, max_wait=0.5, clock=clock)
    bucket.acquire()
    with pytest.raises(RateLimited) as info:
        bucket.acquire()
    assert info.value.retry_after == 1.0
    clock.advance(0.75)
    bucket.acquire()
    assert clock.sleeps == [0.25]


def test_bucket_refuses_a_wait_past_the_deadline() -> None:
    clock = FakeClock()
    events: list[Event] = []
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock, hooks=[events.append])
    bucket.acquire()
    with deadline_scope(clock.now() + 0.5), pytest.raises(RateLimited):
        bucket.acquire()
    assert events == [CallRejected(name="", policy="rate_limit", reason="deadline")]
    with deadline_scope(clock.now() + 2.0):
        bucket.acquire()
    assert clock.sleeps == [1.0]


def test_wait_time_changes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert bucket.wait_time() == 0.0
    bucket.try_acquire(2)
    assert bucket.wait_time() == 0.5
    assert bucket.wait_time(2) == 1.0
    assert bucket.wait_time() == 0.5
    assert bucket.available() == 0.0


def test_bucket_utilization() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=4, clock=clock)
    assert bucket.utilization() == 0.0
    bucket.try_acquire(2)
    assert bucket.utilization() == 0.5
    bucket.try_acquire(2)
    assert bucket.utilization() == 1.0
    frozen = FrozenClock()
    queued = TokenBucket(rate=1.0, burst=1, clock=frozen)
    queued.acquire()
    queued.acquire()  # reserved ahead: the balance is negative
    assert queued.utilization() == 1.0


def test_bucket_status_keys() -> None:
    status = TokenBucket(rate=5.0, burst=10, clock=FakeClock()).get_status()
    assert status == {
        "type": "token_bucket",
        "rate": 5.0,
        "burst": 10,
        "available": 10.0,
        "utilization": 0.0,
        "total_acquired": 0,
        "total_rejected": 0,
        "total_waited_seconds": 0.0,
    }


def test_invoke_takes_a_token_then_runs_the_call() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, mode="fail", clock=FakeClock())
    assert bucket.invoke(lambda: 42) == 42
    calls: list[int] = []
    with pytest.raises(RateLimited):
        bucket.invoke(lambda: calls.append(1))
    assert calls == []


async def test_ainvoke_waits_through_the_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=1, clock=clock)

    async def call() -> str:
        return "ok"

    assert await bucket.ainvoke(call) == "ok"
    assert await bucket.ainvoke(call) == "ok"
    assert clock.sleeps == [0.5]


async def test_aacquire_fail_mode_raises() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, mode="fail", clock=FakeClock())
    await bucket.aacquire()
    with pytest.raises(RateLimited):
        await bucket.aacquire()


# --- sliding window ---------------------------------------------------------------------------


def test_window_admits_max_requests_then_refuses_until_the_oldest_leaves() -> None:
    clock = FakeClock()
    window = SlidingWindow(max_requests=2, window=1.0, clock=clock)
    assert window.try_acquire()
    clock.advance(0.5)
    assert window.try_acquire()
    assert not window.try_acquire()
    assert window.wait_time() == 0.5
    clock.advance(0.5)
    assert window.try_acquire()
    assert not window.try_acquire()


def test_window_wait_mode_queues_in_order() -> None:
    clock = FrozenClock()
    window = SlidingWindow(max_requests=2, window=1.0, clock=clock)
    for _ in range(6):
        window.acquire()
    assert clock.sleeps == [1.0, 1.0, 2.0, 2.0]
    assert window.utilization() == 1.0


def test_window_fail_mode_and_status() -> None:
    events: list[Event] = []
    window = SlidingWindow(1, 2.0, mode="fail", name="rr", clock=FakeClock(), hooks=[events.append])
    window.acquire()
    with pytest.raises(RateLimited) as info:
        window.acquire()
    assert info.value.retry_after == 2.0
    assert events == [CallRejected(name="rr", policy="rate_limit", reason="fail_fast")]
    assert window.get_status() == {
        "type": "sliding_window",
        "max_requests": 1,
        "window": 2.0,
        "burst": 1,
        "available": 0.0,
        "utilization": 1.0,
        "total_acquired": 1,
        "total_rejected": 1,
        "total_waited_seconds": 0.0,
    }


# --- fairness under threads and tasks at once -------------------------------------------------


def _hammer(
    acquire: Callable[[], None], aacquire: Callable[[], Awaitable[None]], threads: int, tasks: int
) -> None:
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        acquire()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()

    async def main() -> None:
        start.wait()
        await asyncio.gather(*(aacquire() for _ in range(tasks)))

    asyncio.run(main())
    for thread in pool:
        thread.join()


def test_bucket_reservations_from_threads_and_tasks_never_share_a_slot() -> None:
    clock = FrozenClock()
    bucket = TokenBucket(rate=10.0, burst=4, clock=clock)
    _hammer(bucket.acquire, bucket.aacquire, threads=16, tasks=32)
    # Each waiter is scheduled 1/rate after the previous one: no two share a token.
    assert sorted(clock.sleeps) == pytest.approx([k / 10.0 for k in range(1, 16 + 32 - 4 + 1)])
    assert bucket.get_status()["total_acquired"] == 48


def test_window_reservations_from_threads_and_tasks_never_overfill_a_window() -> None:
    clock = FrozenClock()
    window = SlidingWindow(max_requests=4, window=1.0, clock=clock)
    _hammer(window.acquire, window.aacquire, threads=16, tasks=32)
    assert sorted(clock.sleeps) == [float(k // 4) for k in range(4, 48)]


# --- properties -------------------------------------------------------------------------------

_steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2.0),
        st.integers(min_value=1, max_value=20),
        st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50.0),
    burst=st.integers(min_value=1, max_value=20),
    steps=_steps,
)
def test_bucket_never_grants_more_than_burst_plus_rate_times_t(
    rate: float, burst: int, steps: list[tuple[float, int, bool]]
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    grants: list[tuple[float, int]] = []
    for pause, wanted, blocking in steps:
        clock.advance(pause)
        tokens = min(wanted, burst)
        assert bucket.wait_time(tokens) >= 0.0
        if blocking:
            bucket.acquire(tokens)
            grants.append((clock.now(), tokens))
        elif bucket.try_acquire(tokens):
            grants.append((clock.now(), tokens))
        assert 0.0 <= bucket.utilization() <= 1.0
    times = [at for at, _ in grants]  # non-decreasing: the clock only moves forward
    granted = list(accumulate((n for _, n in grants), initial=0))
    for start in times:
        first = bisect_left(times, start)
        for end in times[first:]:
            used = granted[bisect_right(times, end)] - granted[first]
            assert used <= burst + rate * (end - start) + 1e-6


@settings(max_examples=150, deadline=None)
@given(
    max_requests=st.integers(min_value=1, max_value=10),
    span=st.floats(min_value=0.1, max_value=5.0),
    steps=_steps,
)
def test_window_never_admits_more_than_max_requests_in_any_window(
    max_requests: int, span: float, steps: list[tuple[float, int, bool]]
) -> None:
    clock = FakeClock()
    window = SlidingWindow(max_requests=max_requests, window=span, clock=clock)
    grants: list[tuple[float, int]] = []
    for pause, wanted, blocking in steps:
        clock.advance(pause)
        tokens = min(wanted, max_requests)
        assert window.wait_time(tokens) >= 0.0
        if blocking:
            window.acquire(tokens)
            grants.append((clock.now(), tokens))
        elif window.try_acquire(tokens):
            grants.append((clock.now(), tokens))
        assert 0.0 <= window.utilization() <= 1.0
    times = [at for at, _ in grants]
    granted = list(accumulate((n for _, n in grants), initial=0))
    for end in times:
        # Shrink the window by a hair: float sums make a grant land an ulp off its slot.
        first = bisect_right(times, end - span + 1e-9)
        assert granted[bisect_right(times, end)] - granted[first] <= max_requests


# --- configuration and validation -------------------------------------------------------------


def test_config_builds_a_token_bucket() -> None:
    limiter = RateLimitConfig(requests_per_second=5.0, burst_size=10, wait=False).build(
        name="llm", clock=FakeClock()
    )
    assert isinstance(limiter, TokenBucket)
    assert (limiter.rate, limiter.burst, limiter.mode, limiter.name) == (5.0, 10, "fail", "llm")


@pytest.mark.parametrize(
    ("rps", "max_requests", "span"), [(10.0, 10, 1.0), (0.5, 1, 2.0), (2.5, 2, 0.8)]
)
def test_config_builds_a_sliding_window(rps: float, max_requests: int, span: float) -> None:
    limiter = RateLimitConfig(requests_per_second=rps, strategy="sliding_window").build()
    assert isinstance(limiter, SlidingWindow)
    assert limiter.max_requests == max_requests
    assert limiter.window == pytest.approx(span)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: TokenBucket(rate=-1, burst=1), "rate"),
        (lambda: TokenBucket(rate=0, burst=1), "rate"),
        (lambda: TokenBucket(rate=float("nan"), burst=1), "rate"),
        (lambda: TokenBucket(rate=float("inf"), burst=1), "rate"),
        (lambda: TokenBucket(rate=1, burst=0.5), "burst"),
        (lambda: TokenBucket(rate=1, burst=1, mode="block"), "mode"),  # type: ignore[arg-type]
        (lambda: TokenBucket(rate=1, burst=1, max_wait=-1), "max_wait"),
        (lambda: SlidingWindow(max_requests=0, window=1), "max_requests"),
        (lambda: SlidingWindow(max_requests=1.5, window=1), "max_requests"),  # type: ignore[arg-type]
        (lambda: SlidingWindow(max_requests=1, window=0), "window"),
        (lambda: RateLimitConfig(requests_per_second=0), "requests_per_second"),
        (lambda: RateLimitConfig(burst_size=0), "burst_size"),
        (lambda: RateLimitConfig(strategy="leaky"), "strategy"),  # type: ignore[arg-type]
        (lambda: RateLimitConfig(max_wait=-0.1), "max_wait"),
    ],
)
def test_bad_arguments_name_the_argument(make: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        make()


@pytest.mark.parametrize("tokens", [0, -1, 3, 1.5])
def test_bad_token_counts_are_refused(tokens: int) -> None:
    bucket = TokenBucket(rate=1.0, burst=2, clock=FakeClock())
    with pytest.raises(ValueError, match="tokens"):
        bucket.try_acquire(tokens)
    with pytest.raises(ValueError, match="tokens"):
        bucket.acquire(tokens)
