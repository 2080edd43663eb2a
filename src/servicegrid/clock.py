"""Time as an injected dependency.

Everything in servicegrid that waits or reads the time takes a ``clock``
argument defaulting to :data:`SYSTEM_CLOCK`, so tests drive state machines
with :class:`servicegrid.testing.FakeClock` and take no wall time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "iso_utc"]


@runtime_checkable
class Clock(Protocol):
    """A source of time and a way to wait. All durations are float seconds."""

    def now(self) -> float:
        """Monotonic seconds, for measuring intervals."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps shown to people."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``time.sleep``, ``asyncio.sleep``."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


def iso_utc(epoch_seconds: float | None) -> str | None:
    """Format epoch seconds as ISO-8601 UTC with a ``Z`` suffix (``2025-11-15T10:32:12Z``)."""
    if epoch_seconds is None:
        return None
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")
