"""Goodput under overload: deadline order, requests kept whole, admission, dropping dead work.

A model stand-in runs inside the real engine; its forward pass moves an
injected clock by a fixed time per token, so the engine's throughput figures
are exact and no assertion depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio

import pytest

from servicegrid.batching import GOODPUT_WINDOW
from servicegrid.errors import DeadlineExceeded, ResourceExhausted
from servicegrid.testing import FakeClock
from tests.batching.words import TimedWords, Words, running, until


def named(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index}" for index in range(count)]


async def test_requests_are_served_earliest_deadline_first_then_in_arrival_order() -> None:
    clock = FakeClock()
    words = Words()
    async with running(words, clock=clock, max_batch_size=1) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        callers = [
            asyncio.create_task(engine.submit(text, deadline=deadline))
            for text, deadline in [
                ("none", None),
                ("late", clock.now() + 100),
                ("soon", clock.now() + 50),
                ("also-late", clock.now() + 100),
            ]
        ]
        await until(lambda: engine.stats().queued == 4)
        words.preprocess_gate.set()
        await asyncio.gather(first, *callers)

    assert words.preprocessed == [["first"], ["soon"], ["late"], ["also-late"], ["none"]]


async def test_a_requests_items_stay_together_in_as_few_batches_as_fit() -> None:
    words = Words()
    async with running(words, max_batch_size=4) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        a = asyncio.create_task(engine.submit_many(named("a", 6)))
        b = asyncio.create_task(engine.submit_many(named("b", 6)))
        await until(lambda: engine.stats().queued == 12)
        assert engine.stats().queued_requests == 2
        words.preprocess_gate.set()
        await asyncio.gather(first, a, b)

    assert words.preprocessed[1:] == [
        ["a0", "a1", "a2", "a3"],
        ["a4", "a5", "b0", "b1"],
        ["b2", "b3", "b4", "b5"],
    ]


async def test_per_batch_caps_how_many_of_a_requests_items_share_one_batch() -> None:
    words = Words()
    async with running(words, max_batch_size=4) as engine:
        assert await engine.submit_many(named("a", 5), per_batch=2) == [2] * 5
    assert words.preprocessed == [["a0", "a1"], ["a2", "a3"], ["a4"]]


async def test_a_request_the_queue_ahead_cannot_finish_in_time_is_refused_at_once() -> None:
    clock = FakeClock()
    words = TimedWords(clock, per_token=0.5)
    async with running(words, clock=clock, max_batch_size=4) as engine:
        await engine.calibrate([named("calibrate", 4)])
        assert engine.throughput(1) == pytest.approx(2.0)  # tokens per second
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))  # 0.5 s, formed
        await words.preprocess_started("first")
        ahead = asyncio.create_task(engine.submit_many(named("a", 10), deadline=clock.now() + 5.6))
        await until(lambda: engine.stats().queued == 10)  # 5 s more, due before the next ones
        assert engine.stats().backlog_seconds == pytest.approx(5.5)

        with pytest.raises(ResourceExhausted) as late:
            await engine.submit_many(named("late", 4), deadline=clock.now() + 6)
        # 5.5 s ahead + 2 s of its own = 7.5 s, due in 6: it would fit 1.5 s from now
        assert late.value.retry_after == pytest.approx(1.5)
        assert "deadline" in str(late.value)

        with pytest.raises(ResourceExhausted) as too_big:
            await engine.submit_many(named("big", 20), deadline=clock.now() + 5)
        assert too_big.value.retry_after is None  # 10 s of work can never fit in 5

        fits = asyncio.create_task(engine.submit_many(named("fits", 4), deadline=clock.now() + 8))
        await until(lambda: engine.stats().queued == 14)
        stats = engine.stats()
        assert (stats.refused_late, stats.rejected, stats.queued_tokens) == (2, 0, 14)

        words.preprocess_gate.set()
        await asyncio.gather(first, ahead, fits)

    assert not any(text.startswith(("late", "big")) for b in words.preprocessed for text in b)


async def test_a_request_that_would_make_an_admitted_one_late_is_refused() -> None:
    clock = FakeClock()
    words = TimedWords(clock, per_token=1.0)
    async with running(words, clock=clock, max_batch_size=4) as engine:
        await engine.calibrate([named("calibrate", 4)])
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))  # 1 s
        await words.preprocess_started("first")
        admitted = asyncio.create_task(
            engine.submit_many(named("a", 4), deadline=clock.now() + 6)
        )  # done at 5 s, due at 6
        await until(lambda: engine.stats().queued == 4)

        with pytest.raises(ResourceExhausted) as refused:
            # due first and done in time itself (at 3 s), it would end the other at 7 s
            await engine.submit_many(named("urgent", 2), deadline=clock.now() + 4)
        assert refused.value.retry_after == pytest.approx(5.0)
        assert "miss its deadline" in str(refused.value)

        words.preprocess_gate.set()
        await asyncio.gather(first, admitted)


async def test_a_request_without_a_deadline_gets_the_default_one() -> None:
    clock = FakeClock()
    words = TimedWords(clock, per_token=1.0)
    async with running(words, clock=clock, max_batch_size=4, default_deadline=30.0) as engine:
        await engine.calibrate([named("calibrate", 4)])
        with pytest.raises(ResourceExhausted) as refused:
            await engine.submit_many(named("n", 40))  # 40 s of work
        assert refused.value.retry_after is None
        assert await engine.submit_many(named("n", 8)) == [2] * 8


async def test_the_rest_of_a_request_is_dropped_when_its_deadline_passes() -> None:
    clock = FakeClock()
    words = Words()
    async with running(words, clock=clock, max_batch_size=2) as engine:
        words.forward_gate.clear()
        caller = asyncio.create_task(engine.submit_many(named("x", 6), deadline=clock.now() + 60))
        await words.forward_started("x0")  # x0 x1 in the model
        await words.preprocess_started("x2")  # x2 x3 prepared, x4 x5 waiting
        await until(lambda: engine.stats().queued == 2)
        clock.advance(120)
        words.forward_gate.set()
        with pytest.raises(DeadlineExceeded):
            await caller
        await until(lambda: engine.stats().in_flight_batches == 0)
        stats = engine.stats()

    assert words.forwarded == [["x0", "x1"]]
    assert stats.expired == 4
    assert (stats.queued, stats.queued_tokens, stats.queued_requests) == (0, 0, 0)


async def test_a_caller_that_leaves_takes_its_items_along_even_from_formed_batches() -> None:
    words = Words()
    async with running(words, max_batch_size=2) as engine:
        words.forward_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.forward_started("first")
        leaver = asyncio.create_task(engine.submit_many(named("l", 4)))
        await words.preprocess_started("l0")  # l0 l1 prepared, l2 l3 waiting
        await until(lambda: engine.stats().queued == 2)

        leaver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaver
        assert engine.stats().queued == 0
        words.forward_gate.set()
        assert await first == len("first")
        await until(lambda: engine.stats().in_flight_batches == 0)
        assert await engine.submit("after") == len("after")

    assert words.forwarded == [["first"], ["after"]]


async def test_goodput_counts_items_in_successful_answers_over_the_window() -> None:
    clock = FakeClock()
    words = TimedWords(clock, per_token=1.0)
    async with running(words, clock=clock, max_batch_size=4) as engine:
        assert await engine.submit_many(named("g", 4)) == [2] * 4  # 4 s of fake time
        words.fail["forward", "boom"] = RuntimeError("bad batch")
        with pytest.raises(RuntimeError):
            await engine.submit("boom")
        stats = engine.stats()
        assert stats.completed_items == 4
        assert stats.goodput == pytest.approx(4 / 4.0)
        clock.advance(2 * GOODPUT_WINDOW)
        assert engine.stats().goodput == 0.0


async def test_a_reservation_holds_a_place_that_later_requests_count() -> None:
    clock = FakeClock()
    words = TimedWords(clock, per_token=1.0)
    async with running(words, clock=clock, max_batch_size=4) as engine:
        await engine.calibrate([named("calibrate", 4)])
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))  # 1 s, formed
        await words.preprocess_started("first")

        with engine.reserve([1, 1, 1, 1], deadline=clock.now() + 6) as place:  # 4 s, held
            with pytest.raises(ResourceExhausted) as refused:
                # alone behind "first" it would fit (5 s of 7); behind the place it does not
                await engine.submit_many(named("later", 4), deadline=clock.now() + 7)
            assert refused.value.retry_after == pytest.approx(2.0)
            assert engine.stats().backlog_seconds == pytest.approx(5.0)

            held = asyncio.create_task(engine.submit_many(named("held", 4), reservation=place))
            await until(lambda: engine.stats().queued == 4)
        # queued in the reserved place: closing the reservation changed nothing
        assert engine.stats().backlog_seconds == pytest.approx(5.0)
        words.preprocess_gate.set()
        assert await asyncio.gather(first, held) == [len("first"), [5] * 4]


async def test_a_closed_reservation_gives_its_place_up() -> None:
    clock = FakeClock()
    words = TimedWords(clock, per_token=1.0)
    async with running(words, clock=clock, max_batch_size=4, max_queue=4) as engine:
        await engine.calibrate([named("calibrate", 4)])
        place = engine.reserve([1, 1, 1, 1], deadline=clock.now() + 6)
        assert engine.is_overloaded()  # the place counts against the queue's bound
        with pytest.raises(ResourceExhausted, match="queue full"):
            await engine.submit("one more")
        place.close()
        place.close()  # twice is harmless
        assert not engine.is_overloaded()
        assert await engine.submit_many(named("n", 4), deadline=clock.now() + 6) == [2] * 4


async def test_a_reservation_whose_deadline_passed_before_submitting_is_deadline_exceeded() -> None:
    clock = FakeClock()
    async with running(Words(), clock=clock) as engine:
        place = engine.reserve([1], deadline=clock.now() + 5)
        clock.advance(10)
        with pytest.raises(DeadlineExceeded):
            await engine.submit_many(["late"], reservation=place)
        assert engine.stats().expired == 1


async def test_on_idle_is_called_when_the_last_batch_is_answered() -> None:
    idle: list[bool] = []
    words = Words()
    engine_box: list[object] = []

    def went_idle() -> None:
        idle.append(engine_box[0].is_idle())  # type: ignore[attr-defined]

    async with running(words, on_idle=went_idle, max_batch_size=2) as engine:
        engine_box.append(engine)
        assert engine.is_idle()
        assert await engine.submit_many(named("i", 4)) == [2] * 4
        await until(lambda: bool(idle))
    assert idle
    assert all(idle)
