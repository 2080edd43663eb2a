"""Bulkhead: cap the calls in flight to one dependency, with a short FIFO queue.

One instance may be shared by threads and asyncio tasks (on any loops) at the
same time. Counters live under a ``threading.Lock``; a released slot is handed
straight to the oldest waiter, so a newcomer can never overtake the queue.
Sync waiters block on a ``threading.Event``; async waiters await a future on
their own loop, resolved through ``loop.call_soon_threadsafe``. The wait is
measured by those primitives (real time); the deadline is read from ``clock``.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import BulkheadFull, DeadlineExceeded, ServiceError
from servicegrid.resilience.deadline import remaining
from servicegrid.resilience.events import CallRejected, Hook, emit

__all__ = ["Bulkhead"]

T = TypeVar("T")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _ThreadWaiter:
    """A queued thread, blocked on an event."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.granted = False
        self.event = threading.Event()

    def wake(self) -> bool:
        self.event.set()
        return True


class _TaskWaiter:
    """A queued task, awaiting a future on its own loop."""

    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.granted = False
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        """Resolve the future from any thread; False if the loop is closed."""
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:
            return False
        return True


W = TypeVar("W", _ThreadWaiter, _TaskWaiter)


class Bulkhead:
    """At most ``max_concurrent`` calls run at once; ``max_queue`` more wait in FIFO order.

    A waiter gives up after ``max_wait`` seconds (None: no limit) or when the
    current call's deadline passes, whichever is first. Raises BulkheadFull
    when the queue is full or ``max_wait`` ran out, DeadlineExceeded when the
    deadline did.
    """

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_queue: int = 0,
        max_wait: float | None = None,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
    ) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
            raise ValueError(f"max_concurrent must be an int, got {max_concurrent!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise ValueError(f"max_queue must be an int >= 0, got {max_queue!r}")
        if max_wait is not None and not 0 <= max_wait < math.inf:
            raise ValueError(f"max_wait must be a finite number >= 0 or None, got {max_wait!r}")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_wait = max_wait
        self.name = name
        self._clock = clock
        self._hooks = tuple(hooks)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: deque[_ThreadWaiter | _TaskWaiter] = deque()
        self._total_rejected = 0

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        with self._lock:
            return self._in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for a slot now."""
        with self._lock:
            return len(self._waiters)

    def is_overloaded(self) -> bool:
        """True when a new call would be rejected: every slot is taken and the queue is full."""
        with self._lock:
            return self._in_flight >= self.max_concurrent and len(self._waiters) >= self.max_queue

    def get_status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: limits, in_flight, queued and total_rejected."""
        with self._lock:
            return {
                "name": self.name,
                "max_concurrent": self.max_concurrent,
                "max_queue": self.max_queue,
                "in_flight": self._in_flight,
                "queued": len(self._waiters),
                "total_rejected": self._total_rejected,
            }

    def invoke(self, inner: Callable[[], T]) -> T:
        self._acquire()
        try:
            return inner()
        finally:
            self._release()

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        await self._aacquire()
        try:
            return await inner()
        finally:
            self._release()

    def _enter(self, make: Callable[[], W]) -> W | None:
        """Take a free slot (None) or join the queue (the waiter); raises when the queue is full."""
        with self._lock:
            if self._in_flight < self.max_concurrent:
                self._in_flight += 1
                return None
            if len(self._waiters) < self.max_queue:
                waiter = make()
                self._waiters.append(waiter)
                return waiter
        raise self._reject("full", BulkheadFull, "no free slot and the queue is full")

    def _timeout(self) -> tuple[float | None, bool]:
        """How long a waiter may wait, and whether the deadline (not max_wait) sets it."""
        budget = remaining(self._clock)
        if budget is not None and (self.max_wait is None or budget < self.max_wait):
            return max(0.0, budget), True
        return self.max_wait, False

    def _abandon(self, waiter: _ThreadWaiter | _TaskWaiter) -> bool:
        """Leave the queue; False when a slot was handed over first (the caller now owns it)."""
        with self._lock:
            if waiter.granted:
                return False
            self._waiters.remove(waiter)
            return True

    def _release(self) -> None:
        """Hand the slot to the oldest waiter that can still take it, or free it."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True
                if waiter.wake():
                    return
                waiter.granted = False
            self._in_flight -= 1

    def _timed_out(self, by_deadline: bool) -> ServiceError:
        if by_deadline:
            return self._reject("deadline", DeadlineExceeded, "deadline passed waiting for a slot")
        return self._reject("max_wait", BulkheadFull, f"no slot within {self.max_wait:g}s")

    def _reject(self, reason: str, kind: type[ServiceError], message: str) -> ServiceError:
        """Count and report a refusal, and build the error to raise."""
        with self._lock:
            self._total_rejected += 1
        emit(self._hooks, CallRejected(name=self.name, policy="bulkhead", reason=reason))
        details = {"max_concurrent": self.max_concurrent, "max_queue": self.max_queue}
        return kind(message, service=self.name or None, details=details)

    def _acquire(self) -> None:
        waiter = self._enter(_ThreadWaiter)
        if waiter is None:
            return
        timeout, by_deadline = self._timeout()
        try:
            woken = waiter.event.wait(timeout)
        except BaseException:
            if not self._abandon(waiter):
                self._release()
            raise
        if not woken and self._abandon(waiter):
            raise self._timed_out(by_deadline)

    async def _aacquire(self) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._enter(lambda: _TaskWaiter(loop))
        if waiter is None:
            return
        timeout, by_deadline = self._timeout()
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            if self._abandon(waiter):
                raise self._timed_out(by_deadline) from None
        except BaseException:
            if not self._abandon(waiter):
                self._release()
            raise

    def __repr__(self) -> str:
        return (
            f"Bulkhead(max_concurrent={self.max_concurrent!r}, max_queue={self.max_queue!r}, "
            f"in_flight={self.in_flight!r}, queued={self.queued!r})"
        )
