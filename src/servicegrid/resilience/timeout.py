"""Timeout: bound a call (or each attempt, placed inside a retry) by a number of seconds.

Async calls are cancelled when the time is up. A sync call cannot be
interrupted from outside, so sync timeouts are cooperative: the deadline is
published through :mod:`servicegrid.resilience.deadline`, the transports turn
it into socket and gRPC timeouts, and a call is refused once it has passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from servicegrid._validate import check_number
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import DeadlineExceeded
from servicegrid.resilience.deadline import current_deadline, enter_deadline, exit_deadline

__all__ = ["Timeout"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Raise :class:`DeadlineExceeded` when the call is not done within ``seconds``."""

    seconds: float
    name: str = ""
    clock: Clock = SYSTEM_CLOCK

    def __post_init__(self) -> None:
        check_number("seconds", self.seconds, inclusive=False)

    def _left(self) -> float:
        deadline = current_deadline()
        left = self.seconds if deadline is None else deadline - self.clock.now()
        if left <= 0:
            raise DeadlineExceeded(
                "deadline passed before the call started", service=self.name or None
            )
        return left

    def invoke(self, inner: Callable[[], T]) -> T:
        token = enter_deadline(self.clock.now() + self.seconds)
        try:
            self._left()
            return inner()
        finally:
            exit_deadline(token)

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        token = enter_deadline(self.clock.now() + self.seconds)
        try:
            scope = asyncio.timeout(self._left())
            try:
                async with scope:
                    return await inner()
            except TimeoutError as error:
                if scope.expired():
                    raise DeadlineExceeded(
                        f"no result within {self.seconds:g}s", service=self.name or None
                    ) from error
                raise
        finally:
            exit_deadline(token)
