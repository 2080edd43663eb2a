"""The scheduler: forms batches from the waiting jobs, and settles what the workers report.

A batch is formed only while fewer than :data:`LOOKAHEAD` formed batches wait
for a forward thread. With one, batch n+1 is tokenized while batch n runs, so
the model never waits for preprocessing. While every forward thread is busy the
next batch is formed just in time: when the first running forward pass is
expected to end, less the time preprocessing takes (both measured as moving
averages), or as soon as a full batch is waiting. Items arriving meanwhile
merge into it, so batches grow with the load instead of being cut early; an
idle forward thread takes what is there at once. Futures are only ever touched
on the event loop thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from servicegrid.batching.admission import AdmissionControl
from servicegrid.batching.stages import FormedBatch, StageEvents, StageThreads
from servicegrid.batching.waiting import JobQueue, Pending
from servicegrid.clock import Clock
from servicegrid.errors import DeadlineExceeded

__all__ = ["LOOKAHEAD", "SMOOTHING", "Scheduler"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

LOOKAHEAD = 1
"""Formed batches that may wait for the forward thread (in preprocess or prepared)."""

SMOOTHING = 0.2
"""Weight of the newest duration in the moving averages of preprocess and forward time."""


def _smoothed(average: float, sample: float) -> float:
    """The moving average after ``sample``; the first sample starts it."""
    return sample if average == 0.0 else average + SMOOTHING * (sample - average)


class Scheduler(Generic[ItemT, ResultT]):
    """One engine's batch forming and bookkeeping; event-loop confined."""

    def __init__(
        self,
        waiting: JobQueue[ItemT, ResultT],
        door: AdmissionControl,
        stages: StageThreads[ItemT, ResultT],
        *,
        max_items: int,
        max_tokens: int,
        batch_wait: float,
        forward_workers: int,
        service: str | None,
        on_idle: Callable[[], object] | None,
        clock: Clock,
    ) -> None:
        self._waiting = waiting
        self._door = door
        self._stages = stages
        self._max_items = max_items
        self._max_tokens = max_tokens
        self._batch_wait = batch_wait
        self._forward_workers = forward_workers
        self.service = service
        self._on_idle = on_idle
        self._clock = clock
        self._arrived = asyncio.Event()
        self._waiting_for_forward = 0
        self._lookahead_free = asyncio.Event()
        self._lookahead_free.set()
        self._forward_since: dict[FormedBatch[ItemT, ResultT], float] = {}
        self._forward_seconds = 0.0
        self._preprocess_seconds = 0.0
        self.in_flight = 0
        """Batches formed and not yet answered."""
        self.total_items = 0
        self.total_batches = 0
        self.expired = 0
        """Items that ended with DeadlineExceeded."""
        self.failed_batches = 0

    def events(self) -> StageEvents[ItemT, ResultT]:
        """What the worker threads report to."""
        return StageEvents(
            left_lookahead=self._left_lookahead,
            forward_began=self._forward_began,
            forward_ended=self._forward_ended,
            delivered=self._deliver,
            failed=self._fail,
            skipped=self._skip,
        )

    def arrived(self) -> None:
        """Work was queued: look again."""
        self._arrived.set()

    def is_idle(self) -> bool:
        """True when nothing waits and no batch is in flight."""
        return self.in_flight == 0 and not self._waiting

    async def run(self) -> None:
        """Form batches forever (the engine's scheduler task); cancel to stop."""
        while True:
            await self._lookahead_free.wait()
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            await self._gather()
            batch, expired = self._waiting.take(
                max_items=self._max_items,
                max_tokens=self._max_tokens,
                now=self._clock.now(),
            )
            self.expire(expired, "before the item reached the model")
            if batch:
                self._waiting_for_forward += 1
                if self._waiting_for_forward >= LOOKAHEAD:
                    self._lookahead_free.clear()
                self.in_flight += 1
                self.total_batches += 1
                self.total_items += len(batch)
                estimate = self._door.formed(batch)
                self._stages.put(FormedBatch(batch, tuple(e.item for e in batch), estimate))

    async def _gather(self) -> None:
        """Let a fuller batch gather while that costs nothing, until a full one is waiting.

        That is ``batch_wait`` seconds, and while the model is busy, until its
        forward pass is expected to end less the time preprocessing takes.
        Arrivals and the end of a forward pass wake this to look again.
        """
        linger_until = self._clock.now() + self._batch_wait
        ready = functools.partial(
            self._waiting.ready, max_items=self._max_items, max_tokens=self._max_tokens
        )
        while self._waiting and not ready():
            until = linger_until
            if len(self._forward_since) >= self._forward_workers:
                first_end = min(self._forward_since.values()) + self._forward_seconds
                until = max(until, first_end - self._preprocess_seconds)
            left = until - self._clock.now()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(left):
                    await self._arrived.wait()
            except TimeoutError:
                return

    def expire(self, entries: Iterable[Pending[ItemT, ResultT]], when: str) -> None:
        for entry in entries:
            if not entry.future.done():
                self.expired += 1
                entry.future.set_exception(
                    DeadlineExceeded(f"deadline passed {when}", service=self.service)
                )

    # -- results (event loop thread, posted by the workers) --------------------------------

    def _left_lookahead(self) -> None:
        """A formed batch reached the forward thread, or failed before it: room for another."""
        self._waiting_for_forward -= 1
        self._lookahead_free.set()

    def _forward_began(self, batch: FormedBatch[ItemT, ResultT], at: float) -> None:
        self._left_lookahead()
        self._forward_since[batch] = at
        self._preprocess_seconds = _smoothed(self._preprocess_seconds, batch.preprocess_seconds)

    def _forward_ended(self, batch: FormedBatch[ItemT, ResultT], seconds: float) -> None:
        del self._forward_since[batch]
        self._forward_seconds = _smoothed(self._forward_seconds, seconds)
        self._arrived.set()  # a gathering batch is needed now

    def _answered(self, batch: FormedBatch[ItemT, ResultT]) -> None:
        self.in_flight -= 1
        self._door.answered(batch.estimate)
        if self._on_idle is not None and self.is_idle():
            self._on_idle()

    def _deliver(
        self, batch: FormedBatch[ItemT, ResultT], results: list[ResultT], seconds: float
    ) -> None:
        self._answered(batch)
        costs = [entry.cost for entry in batch.entries]
        self._door.throughput.record(
            widest=max(costs),
            items=len(costs),
            tokens=sum(costs),
            seconds=seconds,
            side_by_side=len(self._forward_since),  # this pass has not ended here yet
        )
        for entry, result in zip(batch.entries, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    def _fail(self, batch: FormedBatch[ItemT, ResultT], error: Exception) -> None:
        self._answered(batch)
        self.failed_batches += 1
        for entry in batch.entries:
            if not entry.future.done():
                entry.future.set_exception(error)

    def _skip(self, batch: FormedBatch[ItemT, ResultT]) -> None:
        self._answered(batch)
        self.expire(batch.entries, "before the forward pass")
