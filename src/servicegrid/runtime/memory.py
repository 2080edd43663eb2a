"""Giving freed heap memory back to the operating system once a service goes quiet.

A burst of long texts leaves glibc's malloc arenas (one per thread that
allocated: the tokenizer, every forward worker, gRPC) holding hundreds of
megabytes that Python and torch have freed but the process still counts as
resident. ``malloc_trim(0)`` hands the free pages back. It walks every arena
under its lock, so it runs on a worker thread, and only after the engines have
been idle for a moment: never between two batches of a busy service.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

__all__ = ["IDLE_DELAY", "IdleMemoryRelease", "trim_free_memory"]

IDLE_DELAY = 1.0
"""Seconds an engine must stay idle before free memory is given back."""

_log = logging.getLogger("servicegrid.runtime.memory")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def trim_free_memory() -> bool:
    """Give the heap's free pages back to the OS; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class IdleMemoryRelease:
    """Trims free memory once an engine has stayed idle for ``delay`` seconds.

    :meth:`watch` makes the ``on_idle`` callback for one engine. Each call
    restarts the wait, so a service that keeps working is never trimmed;
    event-loop confined.
    """

    def __init__(
        self, *, delay: float = IDLE_DELAY, trim: Callable[[], bool] = trim_free_memory
    ) -> None:
        self.delay = delay
        self.trim = trim
        self.trims = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> bool:
        """True while an idle wait runs (a trim may follow)."""
        return self._timer is not None

    def watch(self, is_idle: Callable[[], bool]) -> Callable[[], None]:
        """The callback to call whenever the engine behind ``is_idle`` has just gone idle."""

        def went_idle() -> None:
            if self._timer is not None:
                self._timer.cancel()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.delay, self._release, loop, is_idle)

        return went_idle

    def _release(self, loop: asyncio.AbstractEventLoop, is_idle: Callable[[], bool]) -> None:
        self._timer = None
        if is_idle():
            self.trims += 1
            loop.run_in_executor(None, self._trim)

    def _trim(self) -> None:
        try:
            self.trim()
        except Exception:  # a failed trim costs memory, never the service
            _log.warning("giving free memory back failed", exc_info=True)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
