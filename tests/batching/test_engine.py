"""BatchEngine: merging, budgets, back-pressure, deadlines, failures, overlap and shutdown.

No assertion depends on timing: stages are held on gates and observed through events.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from servicegrid.batching import LOOKAHEAD, BatchEngine, EngineStats, padded_cost
from servicegrid.errors import (
    DeadlineExceeded,
    InternalError,
    ResourceExhausted,
    ServiceUnavailableError,
)
from servicegrid.resilience.deadline import deadline_scope
from servicegrid.testing import FakeClock
from tests.batching.words import GATE_TIMEOUT, Words, running, until


class ModelBoom(Exception):
    """What the model raises when a test tells it to."""


def text(words: int, tag: str = "w") -> str:
    """``words`` words; the tag keeps texts of equal cost apart."""
    return " ".join([tag] * words)


async def test_concurrent_submits_merge_into_few_batches() -> None:
    words = Words()
    texts = [text(i + 1) for i in range(64)]
    async with running(words, max_batch_size=8) as engine:
        results = await asyncio.gather(*(engine.submit(t) for t in texts))
        stats = engine.stats()

    assert results == [len(t) for t in texts]
    sizes = [len(batch) for batch in words.preprocessed]
    assert sum(sizes) == 64
    assert max(sizes) > 1
    assert all(size <= 8 for size in sizes)
    assert len(sizes) < 64
    assert stats.total_items == 64
    assert stats.total_batches == len(sizes)
    assert stats.average_batch_size == 64 / len(sizes)
    assert stats.queued == stats.in_flight_batches == 0


async def test_submit_many_keeps_order_and_an_empty_list_is_fine() -> None:
    words = Words()
    texts = [text(n, tag) for n, tag in [(5, "a"), (1, "b"), (3, "c"), (2, "d")]]
    async with running(words, max_batch_size=2) as engine:
        assert await engine.submit_many(texts) == [len(t) for t in texts]
        assert await engine.submit_many([]) == []


async def test_submit_many_is_all_or_error() -> None:
    words = Words()
    words.fail["forward", "boom"] = ModelBoom("bad batch")
    async with running(words, max_batch_size=1) as engine:
        with pytest.raises(ModelBoom):
            await engine.submit_many(["one", "boom", "three"])
        assert await engine.submit("after") == len("after")
        assert engine.stats().queued == 0


async def test_token_budget_uses_padded_cost_and_a_wide_item_runs_alone() -> None:
    words = Words()
    costs = [3, 3, 3, 3, 1, 1, 12, 2]
    texts = [text(n, f"t{i}") for i, n in enumerate(costs)]
    async with running(words, max_batch_tokens=10) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        callers = [asyncio.create_task(engine.submit(t)) for t in texts]
        await until(lambda: engine.stats().queued == len(texts))
        words.preprocess_gate.set()
        assert await first == len("first")
        assert await asyncio.gather(*callers) == [len(t) for t in texts]

    formed = [[words.cost(t) for t in batch] for batch in words.preprocessed[1:]]
    assert formed == [[3, 3, 3], [1, 1, 3], [12], [2]]
    assert all(len(batch) == 1 or padded_cost(batch) <= 10 for batch in formed)


async def test_each_batch_is_sorted_by_cost() -> None:
    words = Words()
    texts = [text(n, f"t{n}") for n in (5, 1, 3, 2, 4)]
    async with running(words) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        callers = [asyncio.create_task(engine.submit(t)) for t in texts]
        await until(lambda: engine.stats().queued == len(texts))
        words.preprocess_gate.set()
        await first
        assert await asyncio.gather(*callers) == [len(t) for t in texts]

    assert [words.cost(t) for t in words.preprocessed[1]] == [1, 2, 3, 4, 5]


async def test_batch_wait_holds_a_batch_open_until_it_is_full() -> None:
    words = Words()
    async with running(words, max_batch_size=4, batch_wait=60.0) as engine:
        early = [asyncio.create_task(engine.submit(t)) for t in ("a", "b")]
        await until(lambda: engine.stats().queued == 2)
        late = [asyncio.create_task(engine.submit(t)) for t in ("c", "d")]
        assert await asyncio.gather(*early, *late) == [1, 1, 1, 1]

    assert words.preprocessed == [["a", "b", "c", "d"]]


async def test_full_queue_is_refused_at_once_and_the_engine_stays_healthy() -> None:
    words = Words()
    async with running(words, max_queue=3) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        queued = [asyncio.create_task(engine.submit(t)) for t in ("b", "c")]
        await until(lambda: engine.stats().queued == 2)

        with pytest.raises(ResourceExhausted) as refused:
            await engine.submit_many(["x", "y"])  # room for one, not for both
        assert refused.value.retry_after is not None
        assert refused.value.retry_after > 0
        assert engine.stats().queued == 2

        queued.append(asyncio.create_task(engine.submit("d")))
        await until(lambda: engine.stats().queued == 3)
        assert engine.is_overloaded()
        with pytest.raises(ResourceExhausted):
            await engine.submit("e")

        words.preprocess_gate.set()
        assert await first == len("first")
        assert await asyncio.gather(*queued) == [1, 1, 1]
        assert not engine.is_overloaded()
        assert await engine.submit("after") == len("after")
        assert engine.stats().rejected == 2  # requests, not items
    assert all("x" not in batch and "e" not in batch for batch in words.preprocessed)


async def test_expired_items_never_reach_the_model() -> None:
    clock = FakeClock()
    words = Words()
    async with running(words, clock=clock) as engine:
        with pytest.raises(DeadlineExceeded):
            await engine.submit("past", deadline=clock.now() - 1)
        with deadline_scope(clock.now() - 1), pytest.raises(DeadlineExceeded):
            await engine.submit("scoped")

        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        waiting = asyncio.create_task(engine.submit("waiting", deadline=clock.now() + 60))
        await until(lambda: engine.stats().queued == 1)
        clock.advance(120)
        words.preprocess_gate.set()
        assert await first == len("first")
        with pytest.raises(DeadlineExceeded):
            await waiting
        assert engine.stats().expired == 3

    assert words.preprocessed == [["first"]]


async def test_a_batch_that_expires_after_preprocess_skips_the_forward_pass() -> None:
    clock = FakeClock()
    words = Words()
    async with running(words, clock=clock) as engine:
        words.forward_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.forward_started("first")
        late = asyncio.create_task(engine.submit("late", deadline=clock.now() + 60))
        await words.preprocess_started("late")
        clock.advance(120)
        words.forward_gate.set()
        assert await first == len("first")
        with pytest.raises(DeadlineExceeded):
            await late

    assert words.forwarded == [["first"]]


async def test_a_cancelled_caller_takes_its_item_out_of_the_queue() -> None:
    words = Words()
    async with running(words) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        leaver = asyncio.create_task(engine.submit("leaver"))
        await until(lambda: engine.stats().queued == 1)
        leaver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaver
        assert engine.stats().queued == 0

        words.preprocess_gate.set()
        assert await first == len("first")
        assert await engine.submit("next") == len("next")

    assert words.preprocessed == [["first"], ["next"]]


@pytest.mark.parametrize("stage", ["preprocess", "forward", "postprocess"])
async def test_an_exception_fails_only_its_batch_with_the_original_error(stage: str) -> None:
    words = Words()
    boom = ModelBoom(f"{stage} failed")
    words.fail[stage, "boom"] = boom
    async with running(words) as engine:
        words.preprocess_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.preprocess_started("first")
        doomed = [asyncio.create_task(engine.submit(t)) for t in ("boom", "bystander")]
        await until(lambda: engine.stats().queued == 2)
        words.preprocess_gate.set()

        assert await first == len("first")
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        assert outcomes == [boom, boom]  # the very same exception, not a wrapper
        assert await engine.submit("after") == len("after")
        assert await engine.submit_many(["more", "still"]) == [4, 5]
        stats = engine.stats()
        assert stats.failed_batches == 1
        assert stats.in_flight_batches == 0


async def test_postprocess_with_the_wrong_number_of_results_fails_that_batch() -> None:
    words = Words()
    words.short.add("short")
    async with running(words) as engine:
        with pytest.raises(RuntimeError, match="postprocess returned 0 results for a batch of 1"):
            await engine.submit("short")
        assert await engine.submit("fine") == 4


async def test_a_base_exception_in_the_model_reaches_callers_as_internal_error() -> None:
    class Fatal(BaseException):
        pass

    words = Words()
    words.fail["forward", "fatal"] = Fatal()
    async with running(words) as engine:
        with pytest.raises(InternalError) as failed:
            await engine.submit("fatal")
        assert isinstance(failed.value.__cause__, Fatal)
        assert await engine.submit("fine") == 4


async def test_preprocess_of_the_next_batch_overlaps_the_forward_pass() -> None:
    words = Words()
    async with running(words) as engine:
        words.forward_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.forward_started("first")
        second = asyncio.create_task(engine.submit("second"))
        await words.preprocess_started("second")  # while forward of "first" is held
        assert not words.forward_gate.is_set()
        assert words.forwarded == [["first"]]
        words.forward_gate.set()
        assert [await first, await second] == [5, 6]


async def test_batches_form_only_lookahead_ahead_of_the_forward_pass() -> None:
    words = Words()
    texts = [f"t{i}" for i in range(10)]
    async with running(words, max_batch_size=1) as engine:
        words.forward_gate.clear()
        callers = [asyncio.create_task(engine.submit(t)) for t in texts]
        # one in forward and LOOKAHEAD prepared behind it; the rest keep waiting to merge
        held = 1 + LOOKAHEAD
        await words.preprocess_started(texts[held - 1])
        await until(lambda: engine.stats().queued == len(texts) - held)
        assert engine.stats().in_flight_batches == held
        assert len(words.preprocessed) == held
        words.forward_gate.set()
        assert await asyncio.gather(*callers) == [2] * len(texts)


async def test_items_arriving_while_the_pipeline_is_full_merge_into_one_batch() -> None:
    words = Words()
    async with running(words) as engine:
        words.forward_gate.clear()
        first = asyncio.create_task(engine.submit("first"))
        await words.forward_started("first")
        second = asyncio.create_task(engine.submit("second"))
        await words.preprocess_started("second")
        later = [asyncio.create_task(engine.submit(f"later{i}")) for i in range(10)]
        await until(lambda: engine.stats().queued == 10)
        words.forward_gate.set()
        await asyncio.gather(first, second, *later)
    assert [len(batch) for batch in words.forwarded] == [1, 1, 10]


class HeldWords(Words):
    """Words whose forward pass holds on a per-text event and takes ``seconds`` of a fake clock."""

    def __init__(self, clock: FakeClock, *, seconds: float = 10.0) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds
        self.holds: dict[str, threading.Event] = {}

    def forward(self, prepared: list[str]) -> list[int]:
        result = super().forward(prepared)
        for text in prepared:
            if text in self.holds:
                self.holds[text].wait(GATE_TIMEOUT)
        self.clock.advance(self.seconds)
        return result

    def release(self) -> None:
        super().release()
        for hold in self.holds.values():
            hold.set()


async def test_while_the_model_is_busy_the_next_batch_gathers_until_it_is_needed() -> None:
    clock = FakeClock()
    words = HeldWords(clock)
    words.holds = {"a": threading.Event(), "b": threading.Event()}
    async with running(words, clock=clock) as engine:
        a = asyncio.create_task(engine.submit("a"))
        await words.forward_started("a")
        b = asyncio.create_task(engine.submit("b"))
        await words.preprocess_started("b")
        c = asyncio.create_task(engine.submit("c"))
        await until(lambda: engine.stats().queued == 1)
        words.holds["a"].set()  # a took 10 s; b starts and is expected to take as long
        await words.forward_started("b")
        d = asyncio.create_task(engine.submit("d"))
        await until(lambda: engine.stats().queued == 2)  # c waited for d instead of going alone
        words.holds["b"].set()
        assert await asyncio.gather(a, b, c, d) == [1, 1, 1, 1]
    assert words.forwarded == [["a"], ["b"], ["c", "d"]]


async def test_several_forward_workers_run_batches_at_once() -> None:
    clock = FakeClock()
    words = HeldWords(clock)
    words.holds = {"a": threading.Event(), "b": threading.Event()}
    async with running(words, clock=clock, forward_workers=2) as engine:
        a = asyncio.create_task(engine.submit("a"))
        await words.forward_started("a")
        b = asyncio.create_task(engine.submit("b"))
        await words.forward_started("b")  # while a is still held
        c = asyncio.create_task(engine.submit("c"))
        await words.preprocess_started("c")  # the lookahead batch behind them
        await until(lambda: engine.stats().in_flight_batches == 3)
        words.holds["b"].set()
        assert await b == 1
        await words.forward_started("c")
        words.holds["a"].set()
        assert await asyncio.gather(a, c) == [1, 1]


async def test_aclose_fails_queued_items_finishes_formed_batches_and_is_idempotent() -> None:
    words = Words()
    engine: BatchEngine[str, int] = BatchEngine(words, name="embed")
    await engine.start()
    words.preprocess_gate.clear()
    first = asyncio.create_task(engine.submit("first"))
    await words.preprocess_started("first")
    queued = [asyncio.create_task(engine.submit(t)) for t in ("b", "c")]
    await until(lambda: engine.stats().queued == 2)

    closing = asyncio.create_task(engine.aclose())
    for caller in queued:
        with pytest.raises(ServiceUnavailableError, match="closed"):
            await caller
    with pytest.raises(ServiceUnavailableError):
        await engine.submit("too late")
    assert not closing.done()  # still waiting for the batch in preprocess

    words.preprocess_gate.set()
    await asyncio.wait_for(closing, 30)
    assert await first == len("first")
    await engine.aclose()
    assert words.preprocessed == [["first"]]
    assert engine.stats().queued == 0


async def test_lifecycle_misuse_is_a_clear_error() -> None:
    engine: BatchEngine[str, int] = BatchEngine(Words())
    with pytest.raises(RuntimeError, match="start"):
        await engine.submit("early")
    await engine.aclose()  # never started: nothing to do
    await engine.aclose()
    with pytest.raises(RuntimeError, match="once"):
        await engine.start()

    async with BatchEngine(Words()) as started:
        with pytest.raises(RuntimeError, match="once"):
            await started.start()


@pytest.mark.parametrize(
    "options",
    [
        {"max_batch_size": 0},
        {"max_batch_tokens": 0},
        {"max_queue": 0},
        {"max_queue_tokens": 0},
        {"default_deadline": -1.0},
        {"batch_wait": -1.0},
        {"forward_workers": 0},
        {"max_batch_size": 1.5},
    ],
)
def test_settings_are_checked(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        BatchEngine(Words(), **options)  # type: ignore[arg-type]


async def test_stats_start_at_zero() -> None:
    async with running(Words()) as engine:
        assert engine.stats() == EngineStats(
            queued=0,
            in_flight_batches=0,
            total_items=0,
            total_batches=0,
            average_batch_size=0.0,
            rejected=0,
            expired=0,
            failed_batches=0,
        )
        assert not engine.is_overloaded()


def test_the_package_imports_no_model_runtime() -> None:
    code = "import sys, servicegrid.batching; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
