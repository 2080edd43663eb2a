"""Fault injection: make a healthy dependency slow or failing, on purpose, for tests and drills."""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import InjectedFault
from servicegrid.resilience.events import FaultInjected, Hook, emit

__all__ = ["FaultInjection"]

T = TypeVar("T")


class FaultInjection:
    """Delay a call by ``delay`` s with probability ``delay_rate``; fail it with ``failure_rate``.

    A delayed call may also fail; a failed call raises ``error()`` instead of
    running. Pass a seeded ``rng`` for a repeatable sequence: every call draws
    two numbers while ``enabled``, whatever the rates. Set ``enabled = False``
    (at any time, from any thread) to let every call through untouched.
    """

    def __init__(
        self,
        *,
        failure_rate: float = 0.0,
        delay_rate: float = 0.0,
        delay: float = 0.0,
        error: Callable[[], BaseException] = InjectedFault,
        enabled: bool = True,
        rng: random.Random | None = None,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
    ) -> None:
        for arg, rate in (("failure_rate", failure_rate), ("delay_rate", delay_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{arg} must be between 0 and 1, got {rate!r}")
        if not 0.0 <= delay < float("inf"):
            raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
        if not callable(error):
            raise ValueError(f"error must be a callable returning an exception, got {error!r}")
        self.failure_rate = failure_rate
        self.delay_rate = delay_rate
        self.delay = delay
        self.error = error
        self.enabled = enabled
        self.name = name
        self._rng = rng if rng is not None else random.Random()
        self._rng_lock = threading.Lock()
        self._clock = clock
        self._hooks = tuple(hooks)

    def set_enabled(self, enabled: bool) -> None:
        """Turn injection on or off; the same as assigning ``enabled``."""
        self.enabled = enabled

    def decide(self) -> tuple[float, bool]:
        """Draw the fate of one call: (seconds to delay it, whether it fails)."""
        if not self.enabled:
            return 0.0, False
        with self._rng_lock:
            delay_draw, failure_draw = self._rng.random(), self._rng.random()
        delay = self.delay if delay_draw < self.delay_rate else 0.0
        return delay, failure_draw < self.failure_rate

    def _delayed(self, delay: float) -> None:
        emit(self._hooks, FaultInjected(name=self.name, kind="delay", delay=delay))

    def _fail(self) -> BaseException:
        emit(self._hooks, FaultInjected(name=self.name, kind="error", delay=0.0))
        return self.error()

    def invoke(self, inner: Callable[[], T]) -> T:
        delay, fail = self.decide()
        if delay > 0:
            self._delayed(delay)
            self._clock.sleep(delay)
        if fail:
            raise self._fail()
        return inner()

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        delay, fail = self.decide()
        if delay > 0:
            self._delayed(delay)
            await self._clock.asleep(delay)
        if fail:
            raise self._fail()
        return await inner()

    def __repr__(self) -> str:
        return (
            f"FaultInjection(failure_rate={self.failure_rate!r}, delay_rate={self.delay_rate!r}, "
            f"delay={self.delay!r}, enabled={self.enabled!r})"
        )
