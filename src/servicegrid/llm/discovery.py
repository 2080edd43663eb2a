"""Hosts from discovery: asked at start, then every ``interval`` seconds in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from servicegrid.clock import Clock
from servicegrid.discovery import Discovery, discover_all_async
from servicegrid.errors import DiscoveryError, ServiceError
from servicegrid.llm.hosts import hosts_from_urls
from servicegrid.llm.pool import HostPool

__all__ = ["Discover", "HostRefresher", "from_registry"]

Discover = Callable[[], Awaitable[Sequence[str]]]
"""An async function returning the URLs of the LLM hosts to use now."""

_log = logging.getLogger("servicegrid.llm")


def from_registry(service: str, discovery: Discovery | None = None) -> Discover:
    """A :data:`Discover` that asks servicegrid's discovery for every instance of ``service``
    (its HTTP face; ``discovery`` defaults to the process's own)."""

    async def discover() -> Sequence[str]:
        return await discover_all_async(service, "http", discovery=discovery)

    return discover


class HostRefresher:
    """Keeps ``pool`` on the hosts ``discover`` names; hosts that stay keep their state."""

    def __init__(self, discover: Discover, pool: HostPool, *, interval: float, clock: Clock):
        self._discover = discover
        self._pool = pool
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Ask discovery now; DiscoveryError when it fails. URLs that are not http(s) are
        skipped, and an empty answer leaves no host to call."""
        try:
            urls = await self._discover()
        except ServiceError:
            raise
        except Exception as exc:
            raise DiscoveryError(f"LLM host discovery failed: {exc}", service="llm") from exc
        self._pool.replace(hosts_from_urls(urls))

    async def start(self, *, strict: bool = True) -> None:
        """Refresh now, then keep refreshing in the background. A first refresh that fails
        raises, unless not ``strict``: then it is logged and the background keeps asking."""
        try:
            await self.refresh()
        except ServiceError:
            if strict:
                raise
            _log.warning("LLM host discovery failed at start; asking again in the background")
        self._task = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_forever(self) -> None:
        while True:
            await self._clock.asleep(self._interval)
            try:
                await self.refresh()
            except Exception:  # a registry blip must not empty the pool
                _log.warning("LLM host discovery failed; keeping the hosts known", exc_info=True)
