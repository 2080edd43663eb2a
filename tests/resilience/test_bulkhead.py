"""Bulkhead: concurrency cap, FIFO queue, rejection, and slots given back on every exit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from servicegrid.errors import BulkheadFull, DeadlineExceeded
from servicegrid.resilience.bulkhead import Bulkhead
from servicegrid.resilience.deadline import deadline_scope
from servicegrid.resilience.events import CallRejected, Event
from servicegrid.testing import FakeClock


@contextmanager
def held_by_thread(bulkhead: Bulkhead) -> Iterator[None]:
    """Hold one slot from another thread for the duration of the block."""
    entered, leave = threading.Event(), threading.Event()

    def occupied() -> None:
        entered.set()
        leave.wait()

    def hold() -> None:
        bulkhead.invoke(occupied)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(10)
    try:
        yield
    finally:
        leave.set()
        thread.join()


class Peak:
    """Counts calls inside the bulkhead and remembers the most at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.done = 0

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1
            self.done += 1


def test_invoke_runs_the_call_and_frees_the_slot() -> None:
    bulkhead = Bulkhead(2)
    assert bulkhead.invoke(lambda: bulkhead.in_flight) == 1
    assert bulkhead.in_flight == 0


def test_a_failing_call_frees_its_slot() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(ZeroDivisionError):
        bulkhead.invoke(lambda: 1 / 0)
    assert bulkhead.in_flight == 0


def test_full_without_a_queue_rejects_and_emits() -> None:
    events: list[Event] = []
    bulkhead = Bulkhead(1, name="gpu", hooks=[events.append])
    with held_by_thread(bulkhead):
        assert bulkhead.is_overloaded()
        with pytest.raises(BulkheadFull) as info:
            bulkhead.invoke(lambda: None)
    assert info.value.service == "gpu"
    assert events == [CallRejected(name="gpu", policy="bulkhead", reason="full")]
    assert bulkhead.get_status() == {
        "name": "gpu",
        "max_concurrent": 1,
        "max_queue": 0,
        "in_flight": 0,
        "queued": 0,
        "total_rejected": 1,
    }


def test_a_queued_thread_gets_the_slot_when_it_frees() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    ran = threading.Event()
    with held_by_thread(bulkhead):
        waiter = threading.Thread(target=lambda: bulkhead.invoke(ran.set))
        waiter.start()
        while bulkhead.queued == 0:
            time.sleep(0.001)
        assert not ran.is_set()
    waiter.join()
    assert ran.is_set()
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_a_thread_that_times_out_leaves_the_queue() -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.0)
    with held_by_thread(bulkhead):
        with pytest.raises(BulkheadFull, match="no slot within"):
            bulkhead.invoke(lambda: None)
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
    assert bulkhead.invoke(lambda: "free again") == "free again"


def test_the_deadline_bounds_the_wait() -> None:
    clock = FakeClock()
    events: list[Event] = []
    bulkhead = Bulkhead(1, max_queue=1, max_wait=60.0, clock=clock, hooks=[events.append])
    with held_by_thread(bulkhead), deadline_scope(clock.now()), pytest.raises(DeadlineExceeded):
        bulkhead.invoke(lambda: None)
    assert events == [CallRejected(name="", policy="bulkhead", reason="deadline")]
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_32_threads_never_exceed_max_concurrent() -> None:
    bulkhead = Bulkhead(4, max_queue=32)
    peak = Peak()
    start = threading.Barrier(32)

    def call() -> None:
        peak.enter()
        assert bulkhead.in_flight <= 4
        time.sleep(0.0005)  # hold the slot long enough for others to pile up
        peak.leave()

    def worker() -> None:
        start.wait()
        for _ in range(5):
            bulkhead.invoke(call)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak.peak <= 4
    assert peak.done == 160
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


async def test_64_tasks_never_exceed_max_concurrent() -> None:
    bulkhead = Bulkhead(5, max_queue=64)
    peak = Peak()

    async def call() -> None:
        peak.enter()
        for _ in range(3):
            await asyncio.sleep(0)
        peak.leave()

    await asyncio.gather(*(bulkhead.ainvoke(call) for _ in range(64)))
    assert peak.peak == 5
    assert peak.done == 64
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_threads_and_tasks_share_one_bulkhead() -> None:
    bulkhead = Bulkhead(3, max_queue=96)
    peak = Peak()

    def sync_call() -> None:
        peak.enter()
        time.sleep(0.0005)
        peak.leave()

    async def async_call() -> None:
        peak.enter()
        await asyncio.sleep(0.0005)
        peak.leave()

    async def tasks() -> None:
        await asyncio.gather(*(bulkhead.ainvoke(async_call) for _ in range(64)))

    threads = [threading.Thread(target=bulkhead.invoke, args=(sync_call,)) for _ in range(32)]
    for thread in threads:
        thread.start()
    asyncio.run(tasks())
    for thread in threads:
        thread.join()
    assert peak.peak <= 3
    assert peak.done == 96
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


async def _occupy(bulkhead: Bulkhead, gate: asyncio.Event, order: list[str], label: str) -> None:
    async def call() -> None:
        order.append(label)
        await gate.wait()

    await bulkhead.ainvoke(call)


async def test_queue_overflow_raises_and_the_queue_drains_in_order() -> None:
    bulkhead = Bulkhead(1, max_queue=2)
    gate, order = asyncio.Event(), list[str]()
    tasks = [asyncio.create_task(_occupy(bulkhead, gate, order, str(i))) for i in range(3)]
    await asyncio.sleep(0)
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 2)
    assert bulkhead.is_overloaded()
    with pytest.raises(BulkheadFull):
        await bulkhead.ainvoke(gate.wait)
    gate.set()
    await asyncio.gather(*tasks)
    assert order == ["0", "1", "2"]
    assert bulkhead.get_status()["total_rejected"] == 1
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    gate, order = asyncio.Event(), list[str]()
    holder = asyncio.create_task(_occupy(bulkhead, gate, order, "holder"))
    waiter = asyncio.create_task(_occupy(bulkhead, gate, order, "waiter"))
    await asyncio.sleep(0)
    assert bulkhead.queued == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
    gate.set()
    await holder
    assert order == ["holder"]
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


async def test_a_waiter_cancelled_after_it_was_handed_the_slot_gives_it_back() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    gate, order = asyncio.Event(), list[str]()
    holder = asyncio.create_task(_occupy(bulkhead, gate, order, "holder"))
    waiter = asyncio.create_task(_occupy(bulkhead, gate, order, "waiter"))
    await asyncio.sleep(0)
    seen: list[tuple[int, int]] = []

    def cancel_waiter(_: object) -> None:
        # The holder has released: the slot now belongs to the waiter, which has not run yet.
        seen.append((bulkhead.in_flight, bulkhead.queued))
        waiter.cancel()

    holder.add_done_callback(cancel_waiter)
    gate.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert seen == [(1, 0)]
    assert order == ["holder"]
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)

    async def call() -> str:
        return "free again"

    assert await bulkhead.ainvoke(call) == "free again"


async def test_a_task_that_times_out_leaves_the_queue() -> None:
    events: list[Event] = []
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.0, hooks=[events.append])
    gate, order = asyncio.Event(), list[str]()
    holder = asyncio.create_task(_occupy(bulkhead, gate, order, "holder"))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull):
        await bulkhead.ainvoke(gate.wait)
    assert events == [CallRejected(name="", policy="bulkhead", reason="max_wait")]
    assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
    gate.set()
    await holder
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


async def test_an_async_wait_stops_at_the_deadline() -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(1, max_queue=1, clock=clock)
    gate, order = asyncio.Event(), list[str]()
    holder = asyncio.create_task(_occupy(bulkhead, gate, order, "holder"))
    await asyncio.sleep(0)
    with deadline_scope(clock.now() - 1.0), pytest.raises(DeadlineExceeded):
        await bulkhead.ainvoke(gate.wait)
    gate.set()
    await holder
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: Bulkhead(0), "max_concurrent"),
        (lambda: Bulkhead(2.5), "max_concurrent"),  # type: ignore[arg-type]
        (lambda: Bulkhead(1, max_queue=-1), "max_queue"),
        (lambda: Bulkhead(1, max_wait=-0.5), "max_wait"),
        (lambda: Bulkhead(1, max_wait=float("nan")), "max_wait"),
        (lambda: Bulkhead(1, max_wait=float("inf")), "max_wait"),
    ],
)
def test_bad_arguments_name_the_argument(make: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        make()
