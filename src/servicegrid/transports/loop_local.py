"""One resource per event loop (a gRPC channel, an HTTP session), closed with its loop.

Async network resources belong to the loop that opened them. A client made
once at module level is called from many loops (successive ``asyncio.run``,
threads with their own loops), so its transports keep one resource per loop:
opened on first use there, closed when that loop shuts down (``asyncio.run``
closes it before the loop ends) or at :meth:`LoopLocal.aclose`.

The "closed when the loop shuts down" part uses the loop's own bookkeeping of
async generators: each resource is guarded by a tiny generator the loop knows,
and ``loop.shutdown_asyncgens()`` (which ``asyncio.run`` calls) finalises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

from servicegrid.errors import ClientStateError

__all__ = ["LoopLocal"]

R = TypeVar("R")

_log = logging.getLogger("servicegrid.transports")


async def _guard(resource: object, close: Callable[[], Awaitable[None]]) -> AsyncGenerator[None]:
    """Yield once; closing the generator (at loop shutdown, or explicitly) closes the resource."""
    try:
        yield
    finally:
        try:
            await close()
        except Exception:  # a failing close must not break the loop's shutdown
            _log.debug("closing %r failed", resource, exc_info=True)


def _start(guard: AsyncGenerator[None]) -> None:
    """Run ``guard`` to its first ``yield`` now, which registers it with the running loop."""
    step = guard.__anext__()
    try:
        step.send(None)
    except StopIteration:
        return
    raise AssertionError("the guard must not await before its first yield")  # pragma: no cover


class LoopLocal(Generic[R]):
    """``get()`` the resource of the running loop, opening it with ``open`` on first use there.

    ``close`` is awaited on the resource's own loop. After :meth:`aclose`,
    ``get()`` raises :class:`~servicegrid.errors.ClientStateError`.
    """

    def __init__(
        self, open: Callable[[], R], close: Callable[[R], Awaitable[None]], *, what: str
    ) -> None:
        self._open = open
        self._close = close
        self._what = what
        self._lock = threading.Lock()
        self._by_loop: dict[asyncio.AbstractEventLoop, tuple[R, AsyncGenerator[None]]] = {}
        self._closed = False

    def get(self) -> R:
        """The running loop's resource; call from a coroutine."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is not None:
            return entry[0]
        if self._closed:
            raise ClientStateError(f"{self._what}: the client is closed")
        with self._lock:
            entry = self._by_loop.get(loop)
            if entry is None:
                self._forget_closed_loops()
                resource = self._open()
                guard = _guard(resource, lambda: self._close(resource))
                _start(guard)
                entry = self._by_loop[loop] = (resource, guard)
        return entry[0]

    def _forget_closed_loops(self) -> None:
        """Drop resources whose loop ended without shutting down its generators."""
        for loop in [loop for loop in self._by_loop if loop.is_closed()]:
            self._by_loop.pop(loop)

    async def aclose(self) -> None:
        """Close this loop's resource now; those of other live loops are closed on their loops."""
        self._closed = True
        with self._lock:
            entries, self._by_loop = self._by_loop, {}
        running = asyncio.get_running_loop()
        for loop, (_, guard) in entries.items():
            if loop is running:
                await guard.aclose()
            elif loop.is_running():
                with contextlib.suppress(RuntimeError):  # it stopped meanwhile
                    asyncio.run_coroutine_threadsafe(guard.aclose(), loop)
            # a loop that is not running finalises the guard itself when it shuts down

    def __len__(self) -> int:
        return len(self._by_loop)
