"""BatchEngine: per-item async submits, merged into model batches that run off the event loop.

.. code-block:: text

    submit() ─► WaitQueue ─► scheduler task ─► preprocess thread ─► hand-off ─► forward threads
     (loop)     (bounded)     (loop: forms a      (adapter.preprocess)          (forward +
                              batch when fewer                                   postprocess,
                              than LOOKAHEAD wait                                ``forward_workers``
                              for a forward thread)                              of them)
    each caller's future ◄── loop.call_soon_threadsafe ◄───────────────────────────────┘

A batch is formed only while fewer than :data:`LOOKAHEAD` formed batches wait
for a forward thread. With one, batch n+1 is tokenized while batch n runs, so
the model never waits for preprocessing. While every forward thread is busy the
next batch is formed just in time: when the first running forward pass is
expected to end, less the time preprocessing takes (both measured as moving
averages), or as soon as a full batch is waiting. Items arriving meanwhile
merge into it, so batches grow with the load instead of being cut early; an
idle forward thread takes what is there at once. Futures are only ever touched
on the event loop thread.

Several forward threads suit a CPU: each runs its own batch on a share of the
cores (see :func:`servicegrid.models.threads_per_worker`), which keeps every
core busy where one batch split across all of them waits at each parallel
region for the slowest core.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import operator
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from servicegrid._validate import check_count, check_number
from servicegrid.batching.adapter import ModelAdapter
from servicegrid.batching.waiting import Pending, WaitQueue
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import (
    DeadlineExceeded,
    InternalError,
    ResourceExhausted,
    ServiceUnavailableError,
)
from servicegrid.resilience.deadline import current_deadline, earliest

__all__ = ["LOOKAHEAD", "RETRY_AFTER", "BatchEngine", "EngineStats"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

LOOKAHEAD = 1
"""Formed batches that may wait for the forward thread (in preprocess or prepared)."""

SMOOTHING = 0.2
"""Weight of the newest duration in the moving averages of preprocess and forward time."""

RETRY_AFTER = 0.1
"""Seconds: the ``retry_after`` hint on ResourceExhausted when the queue is full."""

_log = logging.getLogger("servicegrid.batching")


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of one engine; counts are items unless they say batches."""

    queued: int
    """Items waiting for a batch."""
    in_flight_batches: int
    """Batches formed and not yet answered."""
    total_items: int
    """Items sent on in a formed batch."""
    total_batches: int
    average_batch_size: float
    """``total_items / total_batches`` (0.0 before the first batch)."""
    rejected: int
    """Items refused with ResourceExhausted because the queue was full."""
    expired: int
    """Items that ended with DeadlineExceeded."""
    failed_batches: int
    """Batches failed by an exception in preprocess, forward or postprocess."""


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class _Batch(Generic[ItemT, ResultT]):
    """One formed batch on its way through the two threads; entries sorted by cost."""

    entries: list[Pending[ItemT, ResultT]]
    items: tuple[ItemT, ...]
    prepared: Any = None
    preprocess_seconds: float = 0.0

    def expired(self, now: float) -> bool:
        """True when every item's deadline has passed (deadlines never change: thread-safe)."""
        return all(e.deadline is not None and e.deadline <= now for e in self.entries)


def _as_exception(exc: BaseException) -> Exception:
    """The error callers get: ``exc`` itself, or InternalError for a bare BaseException.

    A KeyboardInterrupt or SystemExit set on a future would stop the caller's
    event loop, so those are wrapped (``__cause__`` keeps the original).
    """
    if isinstance(exc, Exception):
        return exc
    error = InternalError(f"{type(exc).__name__} raised inside the model adapter")
    error.__cause__ = exc
    return error


def _smoothed(average: float, sample: float) -> float:
    """The moving average after ``sample``; the first sample starts it."""
    return sample if average == 0.0 else average + SMOOTHING * (sample - average)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Run ``callback`` on the loop's thread; a closed loop has nobody left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


class BatchEngine(Generic[ItemT, ResultT]):
    """Dynamic batching behind a per-item ``async submit``; callers never see a batch.

    A batch holds at most ``max_batch_size`` items whose padded cost
    (``len(batch) * max(cost)``) is at most ``max_batch_tokens``; one item over
    the budget runs alone. Items are taken oldest first and each batch is
    sorted by cost. At most ``max_queue`` items wait; more are refused with
    ResourceExhausted at once. ``batch_wait`` (seconds, default 0: take what is
    there) is how long to wait for a full batch to gather before closing one.
    ``forward_workers`` threads run ``forward``/``postprocess`` on different
    batches at once; the adapter must allow that (torch inference does).
    ``start()``/``aclose()`` are a pair; ``async with`` does both.
    """

    def __init__(
        self,
        adapter: ModelAdapter[ItemT, Any, Any, ResultT],
        *,
        max_batch_size: int = 32,
        max_batch_tokens: int = 16384,
        max_queue: int = 4096,
        batch_wait: float = 0.0,
        forward_workers: int = 1,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_batch_size = check_count("max_batch_size", max_batch_size)
        self.max_batch_tokens = check_count("max_batch_tokens", max_batch_tokens)
        self.max_queue = check_count("max_queue", max_queue)
        self.batch_wait = check_number("batch_wait", batch_wait)
        self.forward_workers = check_count("forward_workers", forward_workers)
        self.name = name
        self._adapter = adapter
        self._clock = clock
        self._state = _State.UNOPENED
        self._waiting: WaitQueue[ItemT, ResultT] = WaitQueue(self.max_queue)
        self._to_preprocess: queue.SimpleQueue[_Batch[ItemT, ResultT] | None] = queue.SimpleQueue()
        self._handoff: queue.SimpleQueue[_Batch[ItemT, ResultT] | None] = queue.SimpleQueue()
        self._arrived = asyncio.Event()
        self._waiting_for_forward = 0
        self._lookahead_free = asyncio.Event()
        self._forward_since: dict[_Batch[ItemT, ResultT], float] = {}
        self._forward_seconds = 0.0
        self._preprocess_seconds = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._threads: list[threading.Thread] = []
        self._in_flight = 0
        self._total_items = 0
        self._total_batches = 0
        self._rejected = 0
        self._expired = 0
        self._failed_batches = 0

    def __repr__(self) -> str:
        return f"BatchEngine(name={self.name!r}, state={self._state.value})"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the scheduler task on the running loop and the worker threads."""
        if self._state is not _State.UNOPENED:
            raise RuntimeError(f"{self!r} can only be started once")
        loop = asyncio.get_running_loop()
        prefix = self.name or "batch"
        self._loop = loop
        self._lookahead_free.set()
        self._threads = [
            threading.Thread(
                target=self._preprocess_worker,
                args=(loop,),
                name=f"{prefix}-preprocess",
                daemon=True,
            ),
            *(
                threading.Thread(
                    target=self._forward_worker,
                    args=(loop,),
                    name=f"{prefix}-forward-{index}",
                    daemon=True,
                )
                for index in range(self.forward_workers)
            ),
        ]
        for thread in self._threads:
            thread.start()
        self._scheduler = loop.create_task(self._schedule(), name=f"{prefix}-scheduler")
        self._state = _State.OPEN

    async def aclose(self) -> None:
        """Fail queued items with ServiceUnavailableError, finish formed batches, join the workers.

        Idempotent: later and concurrent calls wait for the same shutdown. A
        forward pass that never returns keeps this waiting.
        """
        self._state = _State.CLOSED
        if self._scheduler is None:
            return
        if self._closing is None:
            loop = asyncio.get_running_loop()
            self._closing = loop.create_task(self._shutdown(self._scheduler))
        await asyncio.shield(self._closing)

    async def __aenter__(self) -> BatchEngine[ItemT, ResultT]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _shutdown(self, scheduler: asyncio.Task[None]) -> None:
        scheduler.cancel()
        await asyncio.wait([scheduler])
        if not scheduler.cancelled() and (crash := scheduler.exception()) is not None:
            _log.error("batch scheduler %r crashed", self.name, exc_info=crash)
        closed = self._closed_error("closed before the item reached the model")
        for entry in self._waiting.drain():
            if not entry.future.done():
                entry.future.set_exception(closed)
        # the preprocess thread passes the stop on once every formed batch is handed off
        self._to_preprocess.put(None)
        for thread in self._threads:
            await asyncio.to_thread(thread.join)

    def _closed_error(self, detail: str) -> ServiceUnavailableError:
        label = f"batch engine {self.name!r}" if self.name else "batch engine"
        return ServiceUnavailableError(f"{label} {detail}", service=self.name or None)

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, item: ItemT, *, deadline: float | None = None) -> ResultT:
        """The model's result for ``item``.

        ``deadline`` is an absolute ``clock.now()`` time; the current call's
        deadline (``current_deadline()``) applies as well, and the earlier wins.
        Raises ResourceExhausted when the queue is full, DeadlineExceeded when
        the deadline passes first, ServiceUnavailableError once closed, and
        otherwise exactly what the adapter raised for this item's batch.
        """
        (result,) = await self._submit([item], deadline)
        return result

    async def submit_many(
        self, items: Iterable[ItemT], *, deadline: float | None = None
    ) -> list[ResultT]:
        """Results for ``items`` in order, or the first error (the rest are dropped).

        Room for all of them is checked at once; see :meth:`submit`.
        """
        batch = list(items)
        if not batch:
            self._running_loop()
            return []
        return await self._submit(batch, deadline)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._state is _State.UNOPENED:
            raise RuntimeError(f"{self!r}: await start() before submitting")
        if self._state is _State.CLOSED:
            raise self._closed_error("is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise RuntimeError(f"{self!r} serves only the event loop it was started on")
        return loop

    def _cost(self, item: ItemT) -> int:
        cost = operator.index(self._adapter.cost(item))
        if cost < 0:
            raise ValueError(f"adapter.cost() must be >= 0, got {cost}")
        return cost

    async def _submit(self, items: list[ItemT], deadline: float | None) -> list[ResultT]:
        loop = self._running_loop()
        at = earliest(deadline, current_deadline())
        if at is not None and at <= self._clock.now():
            self._expired += len(items)
            raise DeadlineExceeded(
                "deadline passed before the item was queued", service=self.name or None
            )
        costs = [self._cost(item) for item in items]
        if len(items) > self._waiting.room():
            self._rejected += len(items)
            raise ResourceExhausted(
                f"batch queue full: {len(self._waiting)} of {self.max_queue} items waiting,"
                f" {len(items)} more refused",
                service=self.name or None,
                retry_after=RETRY_AFTER,
            )
        entries = [
            Pending(item, cost, at, loop.create_future())
            for item, cost in zip(items, costs, strict=True)
        ]
        self._waiting.push(entries)
        self._arrived.set()
        try:
            return await self._collect(entries, at)
        finally:
            # a caller that leaves (error, timeout, cancellation) takes its waiting items along
            for entry in entries:
                if not entry.future.done():
                    entry.future.cancel()
            self._waiting.discard(entries)

    async def _collect(
        self, entries: Sequence[Pending[ItemT, ResultT]], at: float | None
    ) -> list[ResultT]:
        futures = [entry.future for entry in entries]
        scope = asyncio.timeout(None if at is None else at - self._clock.now())
        try:
            async with scope:
                await asyncio.wait(futures, return_when=asyncio.FIRST_EXCEPTION)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            self._expired += sum(not future.done() for future in futures)
            raise DeadlineExceeded(
                "deadline passed while waiting for the model", service=self.name or None
            ) from exc
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                if future.done():
                    future.exception()  # retrieved: no "never retrieved" warnings
            failed.result()  # raises the adapter's exception, unchanged
        return [future.result() for future in futures]

    # -- state -----------------------------------------------------------------------------

    def is_overloaded(self) -> bool:
        """True when the queue is full, so the next submit gets ResourceExhausted."""
        return self._waiting.room() <= 0

    def stats(self) -> EngineStats:
        """Counters since start; read on the event loop thread."""
        batches = self._total_batches
        return EngineStats(
            queued=len(self._waiting),
            in_flight_batches=self._in_flight,
            total_items=self._total_items,
            total_batches=batches,
            average_batch_size=self._total_items / batches if batches else 0.0,
            rejected=self._rejected,
            expired=self._expired,
            failed_batches=self._failed_batches,
        )

    # -- the scheduler task (event loop thread) --------------------------------------------

    async def _schedule(self) -> None:
        while True:
            await self._lookahead_free.wait()
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            await self._gather()
            batch, expired = self._waiting.take(
                max_items=self.max_batch_size,
                max_tokens=self.max_batch_tokens,
                now=self._clock.now(),
            )
            self._expire(expired, "before the item reached the model")
            if batch:
                self._waiting_for_forward += 1
                if self._waiting_for_forward >= LOOKAHEAD:
                    self._lookahead_free.clear()
                self._in_flight += 1
                self._total_batches += 1
                self._total_items += len(batch)
                self._to_preprocess.put(_Batch(batch, tuple(e.item for e in batch)))

    async def _gather(self) -> None:
        """Let a fuller batch gather while that costs nothing, until a full one is waiting.

        That is ``batch_wait`` seconds, and while the model is busy, until its
        forward pass is expected to end less the time preprocessing takes.
        Arrivals and the end of a forward pass wake this to look again.
        """
        linger_until = self._clock.now() + self.batch_wait
        ready = functools.partial(
            self._waiting.ready, max_items=self.max_batch_size, max_tokens=self.max_batch_tokens
        )
        while self._waiting and not ready():
            until = linger_until
            if len(self._forward_since) >= self.forward_workers:
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

    def _expire(self, entries: Iterable[Pending[ItemT, ResultT]], when: str) -> None:
        for entry in entries:
            if not entry.future.done():
                self._expired += 1
                entry.future.set_exception(
                    DeadlineExceeded(f"deadline passed {when}", service=self.name or None)
                )

    # -- results (event loop thread, posted by the workers) --------------------------------

    def _left_lookahead(self) -> None:
        """A formed batch reached the forward thread, or failed before it: room for another."""
        self._waiting_for_forward -= 1
        self._lookahead_free.set()

    def _forward_began(self, batch: _Batch[ItemT, ResultT], at: float) -> None:
        self._left_lookahead()
        self._forward_since[batch] = at
        self._preprocess_seconds = _smoothed(self._preprocess_seconds, batch.preprocess_seconds)

    def _forward_ended(self, batch: _Batch[ItemT, ResultT], seconds: float) -> None:
        del self._forward_since[batch]
        self._forward_seconds = _smoothed(self._forward_seconds, seconds)
        self._arrived.set()  # a gathering batch is needed now

    def _deliver(self, batch: _Batch[ItemT, ResultT], results: list[ResultT]) -> None:
        self._in_flight -= 1
        for entry, result in zip(batch.entries, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    def _fail(self, batch: _Batch[ItemT, ResultT], error: Exception) -> None:
        self._in_flight -= 1
        self._failed_batches += 1
        for entry in batch.entries:
            if not entry.future.done():
                entry.future.set_exception(error)

    def _skip(self, batch: _Batch[ItemT, ResultT]) -> None:
        self._in_flight -= 1
        self._expire(batch.entries, "before the forward pass")

    # -- the two worker threads ------------------------------------------------------------

    def _preprocess_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        while (batch := self._to_preprocess.get()) is not None:
            started = self._clock.now()
            try:
                batch.prepared = self._adapter.preprocess(batch.items)
                batch.preprocess_seconds = self._clock.now() - started
            except BaseException as exc:
                _post(loop, functools.partial(self._fail, batch, _as_exception(exc)))
                _post(loop, self._left_lookahead)
            else:
                self._handoff.put(batch)
        for _ in range(self.forward_workers):
            self._handoff.put(None)

    def _forward_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        while (batch := self._handoff.get()) is not None:
            started = self._clock.now()
            if batch.expired(started):
                batch.prepared = None
                _post(loop, self._left_lookahead)
                _post(loop, functools.partial(self._skip, batch))
                continue
            _post(loop, functools.partial(self._forward_began, batch, started))
            try:
                raw = self._adapter.forward(batch.prepared)
                batch.prepared = None  # free the prepared inputs before postprocess
                results = list(self._adapter.postprocess(raw, batch.items))
                del raw
                if len(results) != len(batch.items):
                    raise RuntimeError(
                        f"postprocess returned {len(results)} results"
                        f" for a batch of {len(batch.items)} items"
                    )
            except BaseException as exc:
                batch.prepared = None
                _post(loop, functools.partial(self._fail, batch, _as_exception(exc)))
            else:
                _post(loop, functools.partial(self._deliver, batch, results))
            ended = functools.partial(self._forward_ended, batch, self._clock.now() - started)
            _post(loop, ended)
