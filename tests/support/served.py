"""A model service built in-process from settings, serving on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from servicegrid.runtime import RunningServer
from servicegrid.settings import Settings


class BuiltService(Protocol):
    @property
    def running(self) -> RunningServer: ...

    async def aclose(self) -> None: ...


AppT = TypeVar("AppT", bound=BuiltService)


@asynccontextmanager
async def served(
    build: Callable[..., Awaitable[AppT]], settings: Settings, **options: Any
) -> AsyncIterator[AppT]:
    """``build(settings, ...)`` started and SERVING; stopped and closed on the way out."""
    built = await build(settings, address="127.0.0.1:0", registry=CollectorRegistry(), **options)
    await built.running.server.start()
    await built.running.health.set_all(True)
    try:
        yield built
    finally:
        await built.running.server.stop(1.0)
        await built.aclose()
