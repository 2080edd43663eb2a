"""Retry: bounded by attempts *and* by an overall deadline, with backoff, jitter and a budget.

``Retry.plan`` decides, without I/O, what follows a failed attempt: sleep for a
delay, or give up. ``invoke`` and ``ainvoke`` only run that plan. A delay that
would end past the deadline is never slept: the call gives up at once instead.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import MaxRetriesExceededError, is_retryable
from servicegrid.resilience._config import CONFIG
from servicegrid.resilience.backoff import Backoff, ExponentialBackoff
from servicegrid.resilience.budget import RetryBudget
from servicegrid.resilience.deadline import (
    current_deadline,
    earliest,
    enter_deadline,
    exit_deadline,
)
from servicegrid.resilience.events import Hook, RetryGaveUp, RetryScheduled, emit
from servicegrid.resilience.policy import Gate

__all__ = ["GiveUp", "Retry", "RetryState", "Sleep"]

T = TypeVar("T")


class Sleep(NamedTuple):
    """Wait ``delay`` seconds, then try again."""

    delay: float


class GiveUp(NamedTuple):
    """Stop: ``not_retryable``, ``attempts``, ``deadline``, ``budget`` or ``circuit_open``."""

    reason: str


@dataclass(slots=True)
class RetryState:
    """Everything known about one call so far (tenacity's RetryCallState, with our clock).

    ``gates`` are the policies beneath the retry in its pipeline (breakers): a
    delay they would certainly refuse after is never slept.
    """

    started_at: float
    deadline: float | None
    attempt: int = 0
    idle_for: float = 0.0
    gates: tuple[Gate, ...] = ()


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry failed attempts of a call.

    ``attempts`` counts every attempt, the first included. ``timeout`` (seconds)
    bounds the whole call, sleeps included, and combines with any deadline
    already in force. ``on`` decides what is retryable (default: the error
    table's verdict). A server's ``retry_after`` hint lengthens the delay; a
    hint longer than ``max_retry_after`` ends the call. With
    ``wrap_exhausted`` a call that runs out of attempts, time or budget raises
    :class:`MaxRetriesExceededError` from the last error instead of that error.
    """

    attempts: int = 3
    backoff: Backoff = field(default_factory=ExponentialBackoff)
    on: Callable[[BaseException], bool] = is_retryable
    timeout: float | None = None
    budget: RetryBudget | None = None
    respect_retry_after: bool = True
    max_retry_after: float = 120.0
    wrap_exhausted: bool = False
    name: str = ""
    clock: Clock = SYSTEM_CLOCK
    rng: random.Random = field(default_factory=random.Random, compare=False)
    hooks: tuple[Hook, ...] = ()
    gates: tuple[Gate, ...] = ()
    """Policies beneath this one; a :class:`Pipeline` passes its own with each call instead."""

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an integer >= 1, got {self.attempts!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {self.timeout!r}")
        if not self.max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be >= 0, got {self.max_retry_after!r}")

    def plan(self, state: RetryState, error: BaseException, now: float) -> Sleep | GiveUp:
        """What follows failed attempt ``state.attempt``; pure apart from the budget's ledger."""
        if not self.on(error):
            return GiveUp("not_retryable")
        if state.attempt >= CONFIG.max_attempts(self.attempts):
            return GiveUp("attempts")
        if CONFIG.testing:
            return Sleep(0.0)
        delay = self.backoff.delay(state.attempt, self.rng)
        hint = getattr(error, "retry_after", None) if self.respect_retry_after else None
        if isinstance(hint, int | float) and hint > 0:
            if hint > self.max_retry_after:
                return GiveUp("deadline")
            delay = max(delay, float(hint))
        if state.deadline is not None and now + delay >= state.deadline:
            return GiveUp("deadline")
        for gate in self.gates or state.gates:
            if not gate.admits_after(delay):
                return GiveUp("circuit_open")
        if self.budget is not None and not self.budget.try_withdraw():
            return GiveUp("budget")
        return Sleep(delay)

    def _deadline(self, started: float) -> float | None:
        own = started + self.timeout if self.timeout is not None else None
        return earliest(own, current_deadline())

    def _after_failure(self, state: RetryState, error: Exception) -> float:
        """Return the delay to sleep, or raise the error (or its wrapper) when giving up."""
        decision = self.plan(state, error, self.clock.now())
        limit = CONFIG.max_attempts(self.attempts)
        if isinstance(decision, GiveUp):
            if self.hooks:
                emit(
                    self.hooks, RetryGaveUp(self.name, state.attempt, limit, decision.reason, error)
                )
            if self.wrap_exhausted and decision.reason not in ("not_retryable", "circuit_open"):
                raise MaxRetriesExceededError(
                    attempts=state.attempt, last_error=error, service=self.name or None
                ) from error
            raise error
        if self.hooks:
            emit(self.hooks, RetryScheduled(self.name, state.attempt, limit, decision.delay, error))
        state.idle_for += decision.delay
        return decision.delay

    # The first attempt runs without any bookkeeping beyond the budget's ledger and,
    # when this retry has its own timeout, the deadline it publishes: the success
    # path is the common one and must stay cheap.

    def invoke(self, inner: Callable[[], T], gates: tuple[Gate, ...] = ()) -> T:
        if self.budget is not None:
            self.budget.record_request()
        if self.timeout is None:
            try:
                return inner()
            except Exception as error:
                if not self.on(error):
                    raise
                return self._invoke_retries(inner, error, self.clock.now(), gates)
        started = self.clock.now()
        token = enter_deadline(started + self.timeout)
        try:
            try:
                return inner()
            except Exception as error:
                if not self.on(error):
                    raise
                return self._invoke_retries(inner, error, started, gates)
        finally:
            exit_deadline(token)

    def _invoke_retries(
        self, inner: Callable[[], T], first: Exception, started: float, gates: tuple[Gate, ...]
    ) -> T:
        state = RetryState(started, self._deadline(started), 1, 0.0, gates)
        token = enter_deadline(state.deadline)
        try:
            error: Exception = first
            while True:
                self.clock.sleep(self._after_failure(state, error))
                state.attempt += 1
                try:
                    return inner()
                except Exception as next_error:
                    error = next_error
        finally:
            exit_deadline(token)

    async def ainvoke(self, inner: Callable[[], Awaitable[T]], gates: tuple[Gate, ...] = ()) -> T:
        if self.budget is not None:
            self.budget.record_request()
        if self.timeout is None:
            try:
                return await inner()
            except Exception as error:
                if not self.on(error):
                    raise
                return await self._ainvoke_retries(inner, error, self.clock.now(), gates)
        started = self.clock.now()
        token = enter_deadline(started + self.timeout)
        try:
            try:
                return await inner()
            except Exception as error:
                if not self.on(error):
                    raise
                return await self._ainvoke_retries(inner, error, started, gates)
        finally:
            exit_deadline(token)

    async def _ainvoke_retries(
        self,
        inner: Callable[[], Awaitable[T]],
        first: Exception,
        started: float,
        gates: tuple[Gate, ...],
    ) -> T:
        state = RetryState(started, self._deadline(started), 1, 0.0, gates)
        token = enter_deadline(state.deadline)
        try:
            error: Exception = first
            while True:
                await self.clock.asleep(self._after_failure(state, error))
                state.attempt += 1
                try:
                    return await inner()
                except Exception as next_error:
                    error = next_error
        finally:
            exit_deadline(token)
