"""BatchEngine: per-item async submits, merged into model batches that run off the event loop.

.. code-block:: text

    submit() ─► admission ─► JobQueue ─► scheduler task ─► preprocess ─► hand-off ─► forward
     (loop)     (bounds,     (earliest   (loop: forms a      thread                   threads
                deadline at  deadline    batch when fewer    (adapter.preprocess)     (forward +
                measured     first)      than LOOKAHEAD wait                          postprocess)
                throughput)              for a forward thread)
    each caller's future ◄── loop.call_soon_threadsafe ◄──────────────────────────────┘

Batches are formed just in time by the scheduler (see
:mod:`servicegrid.batching.scheduler`); futures are only ever touched on the
event loop thread.

Several forward threads suit a CPU: each runs its own batch on a share of the
cores (see :func:`servicegrid.models.threads_per_worker`), which keeps every
core busy where one batch split across all of them waits at each parallel
region for the slowest core.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import operator
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from servicegrid._validate import check_count, check_number
from servicegrid.batching.adapter import ModelAdapter
from servicegrid.batching.admission import RETRY_AFTER, AdmissionControl, Reservation
from servicegrid.batching.scheduler import LOOKAHEAD, Scheduler
from servicegrid.batching.stages import StageThreads
from servicegrid.batching.stats import EngineStats, RateWindow
from servicegrid.batching.throughput import ThroughputEstimate, by_class
from servicegrid.batching.waiting import Job, JobQueue, Pending
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import (
    DeadlineExceeded,
    ServiceUnavailableError,
)
from servicegrid.resilience.deadline import current_deadline, earliest

__all__ = ["LOOKAHEAD", "RETRY_AFTER", "BatchEngine", "EngineStats"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

_log = logging.getLogger("servicegrid.batching")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class BatchEngine(Generic[ItemT, ResultT]):
    """Dynamic batching behind a per-item ``async submit``; callers never see a batch.

    A batch holds at most ``max_batch_size`` items whose padded cost
    (``len(batch) * max(cost)``) is at most ``max_batch_tokens``; one item over
    the budget runs alone. Requests are served earliest deadline first, then
    in arrival order, and one request's items fill a batch before the next
    request's (see :mod:`servicegrid.batching.waiting`); each batch is sorted
    by cost. ``default_deadline`` (seconds) applies to a request that brings
    none.

    At most ``max_queue`` items and ``max_queue_tokens`` tokens wait; a request
    that would pass either bound, or that the engine's measured throughput
    cannot finish by its deadline (see :mod:`servicegrid.batching.admission`),
    is refused at once with ResourceExhausted and a ``retry_after``. A request
    whose deadline passes, or whose caller leaves, takes its waiting items out.

    ``batch_wait`` (seconds, default 0: take what is there) is how long to wait
    for a full batch to gather before closing one. ``forward_workers`` threads
    run ``forward``/``postprocess`` on different batches at once; the adapter
    must allow that (torch inference does). ``start()``/``aclose()`` are a
    pair; ``async with`` does both. ``on_idle`` is called on the event loop
    each time the engine has answered its last batch and nothing waits.
    """

    def __init__(
        self,
        adapter: ModelAdapter[ItemT, Any, Any, ResultT],
        *,
        max_batch_size: int = 32,
        max_batch_tokens: int = 16384,
        max_queue: int = 4096,
        max_queue_tokens: int = 1 << 20,
        default_deadline: float | None = None,
        batch_wait: float = 0.0,
        forward_workers: int = 1,
        name: str = "",
        on_idle: Callable[[], object] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_batch_size = check_count("max_batch_size", max_batch_size)
        self.max_batch_tokens = check_count("max_batch_tokens", max_batch_tokens)
        self.default_deadline = (
            None if default_deadline is None else check_number("default_deadline", default_deadline)
        )
        self.batch_wait = check_number("batch_wait", batch_wait)
        self.forward_workers = check_count("forward_workers", forward_workers)
        self.name = name
        self._adapter = adapter
        self._clock = clock
        self._state = _State.UNOPENED
        self._waiting: JobQueue[ItemT, ResultT] = JobQueue()
        self._arrivals = 0
        self._throughput = ThroughputEstimate(
            forward_workers=self.forward_workers,
            max_items=self.max_batch_size,
            max_tokens=self.max_batch_tokens,
        )
        self._door = AdmissionControl(
            self._throughput,
            max_queue=max_queue,
            max_queue_tokens=max_queue_tokens,
            service=name or None,
        )
        self.max_queue = self._door.max_queue
        self.max_queue_tokens = self._door.max_queue_tokens
        self._stages = StageThreads(adapter, forward_workers=self.forward_workers, clock=clock)
        self._batches: Scheduler[ItemT, ResultT] = Scheduler(
            self._waiting,
            self._door,
            self._stages,
            max_items=self.max_batch_size,
            max_tokens=self.max_batch_tokens,
            batch_wait=self.batch_wait,
            forward_workers=self.forward_workers,
            service=name or None,
            on_idle=on_idle,
            clock=clock,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._goodput = RateWindow(started=clock.now())

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
        self._stages.start(loop, self._batches.events(), prefix=prefix)
        self._scheduler = loop.create_task(self._batches.run(), name=f"{prefix}-scheduler")
        self._state = _State.OPEN

    async def calibrate(self, batches: Iterable[Sequence[ItemT]]) -> None:
        """Time the model on ``batches`` so that admission has figures from the first request.

        Each batch is preprocessed once, then run forward once per forward
        worker, all at once, as under load. Call it after :meth:`start` and
        before serving. Real batches refine the figures from then on; a
        calibration batch that is not full only stands in until a full one has run.
        """
        self._running_loop()
        for batch in batches:
            items = list(batch)
            if not items:
                continue
            costs = [self._cost(item) for item in items]
            side_by_side = self.forward_workers
            prepared = await asyncio.to_thread(self._stages.prepare, items)
            timings = await asyncio.gather(
                *(
                    asyncio.to_thread(self._stages.time_forward, prepared, items)
                    for _ in range(side_by_side)
                )
            )
            del prepared
            for seconds in timings:
                self._throughput.record(
                    widest=max(costs),
                    items=len(costs),
                    tokens=sum(costs),
                    seconds=seconds,
                    side_by_side=side_by_side,
                )

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
        await self._stages.stop()

    def _closed_error(self, detail: str) -> ServiceUnavailableError:
        label = f"batch engine {self.name!r}" if self.name else "batch engine"
        return ServiceUnavailableError(f"{label} {detail}", service=self.name or None)

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, item: ItemT, *, deadline: float | None = None) -> ResultT:
        """The model's result for ``item``.

        ``deadline`` is an absolute ``clock.now()`` time; the current call's
        deadline (``current_deadline()``) applies as well, and the earlier wins.
        Raises ResourceExhausted when the queue is full or the item cannot be
        done by its deadline, DeadlineExceeded when the deadline passes first,
        ServiceUnavailableError once closed, and otherwise exactly what the
        adapter raised for this item's batch.
        """
        (result,) = await self._submit([item], deadline, self.max_batch_size, None)
        return result

    async def submit_many(
        self,
        items: Iterable[ItemT],
        *,
        deadline: float | None = None,
        per_batch: int | None = None,
        reservation: Reservation | None = None,
    ) -> list[ResultT]:
        """Results for ``items`` in order, or the first error (the rest are dropped).

        The items are one request: admitted or refused together, served
        together, at most ``per_batch`` of them in one batch (default
        ``max_batch_size``); see :meth:`submit`. With a ``reservation`` from
        :meth:`reserve` the request was admitted already: it takes the
        reserved place and deadline.
        """
        batch = list(items)
        if reservation is not None:
            reservation.close()
        if not batch:
            self._running_loop()
            return []
        limit = self.max_batch_size if per_batch is None else check_count("per_batch", per_batch)
        return await self._submit(batch, deadline, limit, reservation)

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

    async def _submit(
        self,
        items: list[ItemT],
        deadline: float | None,
        per_batch: int,
        reservation: Reservation | None,
    ) -> list[ResultT]:
        loop = self._running_loop()
        now = self._clock.now()
        if reservation is None:
            at, arrival = self._deadline(deadline, now, len(items)), self._arrivals
            self._arrivals += 1
        else:
            at, arrival = reservation.deadline, reservation.arrival
        entries = [Pending(item, self._cost(item), at, loop.create_future()) for item in items]
        job = Job(entries, at, arrival, per_batch)
        if reservation is None:
            self._door.check(len(entries), job.tokens_by_class, at, self._waiting, now)
        else:
            self._refuse_if_passed(at, now, len(items))
        self._waiting.push(job)
        self._batches.arrived()
        try:
            results = await self._collect(entries, at)
        except DeadlineExceeded:
            # the request is over: what of it had not run yet expired with it
            self._batches.expired += sum(not entry.future.done() for entry in entries)
            raise
        finally:
            # a caller that leaves (error, timeout, cancellation) takes its waiting items along
            for entry in entries:
                entry.left = True
                if not entry.future.done():
                    entry.future.cancel()
            self._waiting.discard(job)
        self._goodput.add(len(results), self._clock.now())
        return results

    def reserve(self, costs: Sequence[int], *, deadline: float | None = None) -> Reservation:
        """Admit a request by estimated ``costs`` now and hold its place while its items are built.

        For a caller whose items are expensive to build (tokenizing long
        texts): a request that would be refused costs no more than an estimate
        of its size, and one that is admitted counts against the requests
        arriving after it while it is being built. Raises what
        :meth:`submit_many` would; pass the reservation to it, and close it
        (``with``) in case that never happens.
        """
        self._running_loop()
        now = self._clock.now()
        at = self._deadline(deadline, now, len(costs))
        arrival = self._arrivals
        self._arrivals += 1
        return self._door.reserve(len(costs), by_class(costs), at, arrival, self._waiting, now)

    def _deadline(self, deadline: float | None, now: float, items: int) -> float | None:
        """The request's deadline (the default one when it has none); raise if it has passed."""
        at = earliest(deadline, current_deadline())
        if at is None and self.default_deadline is not None:
            at = now + self.default_deadline
        self._refuse_if_passed(at, now, items)
        return at

    def _refuse_if_passed(self, at: float | None, now: float, items: int) -> None:
        if at is not None and at <= now:
            self._batches.expired += items
            raise DeadlineExceeded(
                "deadline passed before the item was queued", service=self.name or None
            )

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
        """True when the queue is full (items or tokens), so the next submit is refused."""
        return self._door.is_full(self._waiting)

    def is_idle(self) -> bool:
        """True when nothing waits and no batch is in flight."""
        return self._batches.is_idle()

    def throughput(self, tokens: int) -> float:
        """Measured tokens per second on texts ``tokens`` long (0.0 before any batch ran)."""
        return self._throughput.tokens_per_second(tokens)

    def stats(self) -> EngineStats:
        """Counters since start; read on the event loop thread."""
        work = self._batches
        batches = work.total_batches
        return EngineStats(
            queued=len(self._waiting),
            in_flight_batches=work.in_flight,
            total_items=work.total_items,
            total_batches=batches,
            average_batch_size=work.total_items / batches if batches else 0.0,
            rejected=self._door.rejected,
            expired=work.expired,
            failed_batches=work.failed_batches,
            queued_tokens=self._waiting.tokens,
            queued_requests=self._waiting.jobs,
            refused_late=self._door.refused_late,
            completed_items=self._goodput.total,
            goodput=self._goodput.rate(self._clock.now()),
            backlog_seconds=self._door.queued_seconds(self._waiting),
        )
