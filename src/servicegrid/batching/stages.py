"""The engine's worker threads: preprocess, then forward and postprocess, reporting to the loop.

One preprocess thread tokenizes each formed batch and hands it off; each of the
forward threads takes the next prepared batch, skips it when nobody is left
waiting for it, and otherwise runs the model. Every outcome goes back to the
event loop as a callback (:class:`StageEvents`); these threads never touch a
future.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from servicegrid.batching.adapter import ModelAdapter
from servicegrid.batching.waiting import Pending
from servicegrid.clock import Clock
from servicegrid.errors import InternalError

__all__ = ["FormedBatch", "StageEvents", "StageThreads"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(eq=False, slots=True)
class FormedBatch(Generic[ItemT, ResultT]):
    """One formed batch on its way through the threads; entries sorted by cost."""

    entries: list[Pending[ItemT, ResultT]]
    items: tuple[ItemT, ...]
    estimate: float = 0.0
    """Engine seconds this batch was expected to take when it was formed."""
    prepared: Any = None
    preprocess_seconds: float = 0.0

    def abandoned(self, now: float) -> bool:
        """True when no item's caller still waits: each one's deadline passed, or it left.

        Deadlines never change and ``left`` is a flag the loop only ever sets,
        so this is safe to read from a worker thread.
        """
        return all(e.left or (e.deadline is not None and e.deadline <= now) for e in self.entries)


@dataclass(frozen=True, slots=True)
class StageEvents(Generic[ItemT, ResultT]):
    """What the threads report; each runs on the event loop's thread."""

    left_lookahead: Callable[[], None]
    """A formed batch reached a forward thread, or failed before one."""
    forward_began: Callable[[FormedBatch[ItemT, ResultT], float], None]
    forward_ended: Callable[[FormedBatch[ItemT, ResultT], float], None]
    delivered: Callable[[FormedBatch[ItemT, ResultT], list[ResultT], float], None]
    failed: Callable[[FormedBatch[ItemT, ResultT], Exception], None]
    skipped: Callable[[FormedBatch[ItemT, ResultT]], None]


def as_exception(exc: BaseException) -> Exception:
    """The error callers get: ``exc`` itself, or InternalError for a bare BaseException.

    A KeyboardInterrupt or SystemExit set on a future would stop the caller's
    event loop, so those are wrapped (``__cause__`` keeps the original).
    """
    if isinstance(exc, Exception):
        return exc
    error = InternalError(f"{type(exc).__name__} raised inside the model adapter")
    error.__cause__ = exc
    return error


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Run ``callback`` on the loop's thread; a closed loop has nobody left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


class StageThreads(Generic[ItemT, ResultT]):
    """The preprocess thread and ``forward_workers`` forward threads of one engine."""

    def __init__(
        self,
        adapter: ModelAdapter[ItemT, Any, Any, ResultT],
        *,
        forward_workers: int,
        clock: Clock,
    ) -> None:
        self._adapter = adapter
        self._clock = clock
        self.forward_workers = forward_workers
        self._to_preprocess: queue.SimpleQueue[FormedBatch[ItemT, ResultT] | None] = (
            queue.SimpleQueue()
        )
        self._handoff: queue.SimpleQueue[FormedBatch[ItemT, ResultT] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        events: StageEvents[ItemT, ResultT],
        *,
        prefix: str,
    ) -> None:
        self._threads = [
            threading.Thread(
                target=self._preprocess,
                args=(loop, events),
                name=f"{prefix}-preprocess",
                daemon=True,
            ),
            *(
                threading.Thread(
                    target=self._forward,
                    args=(loop, events),
                    name=f"{prefix}-forward-{index}",
                    daemon=True,
                )
                for index in range(self.forward_workers)
            ),
        ]
        for thread in self._threads:
            thread.start()

    def put(self, batch: FormedBatch[ItemT, ResultT]) -> None:
        """Send a formed batch on to the preprocess thread."""
        self._to_preprocess.put(batch)

    async def stop(self) -> None:
        """Let every batch already sent finish, then join the threads."""
        # the preprocess thread passes the stop on once every formed batch is handed off
        self._to_preprocess.put(None)
        for thread in self._threads:
            await asyncio.to_thread(thread.join)

    def prepare(self, items: list[ItemT]) -> Any:
        """Preprocess ``items`` here and now (never while the preprocess thread runs)."""
        return self._adapter.preprocess(items)

    def time_forward(self, prepared: Any, items: list[ItemT]) -> float:
        """Run forward and postprocess here and now; seconds the forward pass took."""
        started = self._clock.now()
        raw = self._adapter.forward(prepared)
        seconds = self._clock.now() - started
        self._adapter.postprocess(raw, items)
        return seconds

    def _preprocess(
        self, loop: asyncio.AbstractEventLoop, events: StageEvents[ItemT, ResultT]
    ) -> None:
        while (batch := self._to_preprocess.get()) is not None:
            started = self._clock.now()
            try:
                batch.prepared = self._adapter.preprocess(batch.items)
                batch.preprocess_seconds = self._clock.now() - started
            except BaseException as exc:
                _post(loop, functools.partial(events.failed, batch, as_exception(exc)))
                _post(loop, events.left_lookahead)
            else:
                self._handoff.put(batch)
        for _ in range(self.forward_workers):
            self._handoff.put(None)

    def _forward(
        self, loop: asyncio.AbstractEventLoop, events: StageEvents[ItemT, ResultT]
    ) -> None:
        while (batch := self._handoff.get()) is not None:
            started = self._clock.now()
            if batch.abandoned(started):
                batch.prepared = None
                _post(loop, events.left_lookahead)
                _post(loop, functools.partial(events.skipped, batch))
                continue
            _post(loop, functools.partial(events.forward_began, batch, started))
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
                seconds = self._clock.now() - started
                _post(loop, functools.partial(events.failed, batch, as_exception(exc)))
            else:
                seconds = self._clock.now() - started
                _post(loop, functools.partial(events.delivered, batch, results, seconds))
            _post(loop, functools.partial(events.forward_ended, batch, seconds))
