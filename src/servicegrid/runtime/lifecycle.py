"""Run a server until SIGTERM/SIGINT (or a stop event), then shut it down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from servicegrid.runtime.server import RunningServer

__all__ = ["DEFAULT_GRACE", "Announce", "Ready", "serve"]

DEFAULT_GRACE = 10.0

Ready = Callable[[RunningServer], Awaitable[None]]
"""Called once the server has started; it marks services SERVING when they can answer."""

Announce = Callable[[RunningServer], AbstractAsyncContextManager[Any]]
"""Registers the serving server in discovery for as long as its context lasts."""

_log = logging.getLogger(__name__)
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _mark_all_serving(running: RunningServer) -> None:
    await running.health.set_all(True)


async def serve(
    running: RunningServer,
    *,
    grace: float = DEFAULT_GRACE,
    stop: asyncio.Event | None = None,
    ready: Ready | None = None,
    announce: Announce | None = None,
) -> None:
    """Start ``running``, serve until ``stop`` is set or SIGTERM/SIGINT arrives, then stop.

    After start, ``ready(running)`` runs; without one every service is marked
    SERVING at once; then ``announce(running)`` registers it in discovery until
    the stop. Shutdown deregisters, sets every health status NOT_SERVING, then
    ``server.stop(grace)`` refuses new calls and gives in-flight ones ``grace``
    seconds to finish before cancelling them. Returns normally, so the process
    can exit 0. Signal handlers are installed only where the loop allows it
    (the main thread on Unix) and removed on return.
    """
    stop = asyncio.Event() if stop is None else stop
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in _SIGNALS:
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or no signal support on this platform
        installed.append(sig)
    try:
        await running.server.start()
        _log.info("serving %s on port %d", ", ".join(running.services), running.port)
        await (ready or _mark_all_serving)(running)
        async with announce(running) if announce else contextlib.nullcontext():
            await stop.wait()
        _log.info("stopping: NOT_SERVING, then up to %.1f s for calls in flight", grace)
    finally:
        try:
            await running.health.shutdown()
            await running.server.stop(grace)
        finally:
            for sig in installed:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
    _log.info("stopped")
