"""One retry vocabulary: :class:`RetrySpec`, and adapters from the names the seeds use.

``RetrySpec.attempts`` counts every attempt, the first included. The seeds
count in two ways, and each public name is converted here and nowhere else:

=====================================================  ==========================
public name                                            counts
=====================================================  ==========================
``ResilientServiceClient(max_retries=3)`` (seed 001)   attempts, the first included
``RetryConfig(max_retries=3)`` (seed 004)              attempts, the first included
``ServiceClientConfig(retry_attempts=3)`` (seed 000)   attempts, the first included
``MAX_RETRY_ATTEMPTS`` / ``Settings.max_retry_attempts``  attempts, the first included
``OperationRetryPolicy(retries=3)`` (seed 003)         retries after the first attempt
``StepRetry(max_attempts=3)`` (workflow steps)         attempts, the first included
=====================================================  ==========================
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from servicegrid._validate import check_count, check_number
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import is_retryable
from servicegrid.resilience.backoff import Backoff, ExponentialBackoff, Jitter
from servicegrid.resilience.budget import RetryBudget
from servicegrid.resilience.events import Hook
from servicegrid.resilience.retry import Retry

__all__ = ["RetrySpec"]


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """What to do when an attempt fails: how often to try, how long to wait, when to stop.

    ``attempts`` counts every attempt, the first included; ``timeout`` (seconds)
    bounds the whole call, waits included; ``on`` says which failures are worth
    another attempt (default: the error table's verdict). A ``Retry-After``
    longer than ``max_retry_after`` seconds ends the call. With ``wrap_exhausted``
    a call that runs out raises :class:`~servicegrid.errors.MaxRetriesExceededError`.
    """

    attempts: int = 3
    backoff: Backoff = field(default_factory=ExponentialBackoff)
    timeout: float | None = None
    on: Callable[[BaseException], bool] = is_retryable
    respect_retry_after: bool = True
    max_retry_after: float = 120.0
    wrap_exhausted: bool = False

    def __post_init__(self) -> None:
        check_count("attempts", self.attempts)
        if self.timeout is not None:
            check_number("timeout", self.timeout, inclusive=False)
        check_number("max_retry_after", self.max_retry_after)

    @classmethod
    def exponential(
        cls,
        attempts: int,
        *,
        base_delay: float,
        max_delay: float,
        factor: float = 2.0,
        jitter: Jitter = Jitter.FULL,
        on: Callable[[BaseException], bool] = is_retryable,
        timeout: float | None = None,
        max_retry_after: float = 120.0,
        wrap_exhausted: bool = False,
    ) -> RetrySpec:
        """``attempts`` in all, waiting min(max_delay, base_delay * factor**(n-1)), jittered."""
        return cls(
            attempts=attempts,
            backoff=ExponentialBackoff(
                initial=base_delay, max=max_delay, factor=factor, jitter=jitter
            ),
            timeout=timeout,
            on=on,
            max_retry_after=max_retry_after,
            wrap_exhausted=wrap_exhausted,
        )

    @classmethod
    def from_retries(
        cls,
        retries: int,
        *,
        base_delay: float,
        max_delay: float,
        jitter: Jitter = Jitter.EQUAL,
        on: Callable[[BaseException], bool] = is_retryable,
        max_retry_after: float = 120.0,
        wrap_exhausted: bool = True,
    ) -> RetrySpec:
        """Seed 003's vocabulary: ``retries`` *after* the first attempt, so ``retries + 1`` in all.

        Running out raises MaxRetriesExceededError, as seed 003 says.
        """
        check_count("retries", retries, minimum=0)
        return cls.exponential(
            retries + 1,
            base_delay=base_delay,
            max_delay=max_delay,
            jitter=jitter,
            on=on,
            max_retry_after=max_retry_after,
            wrap_exhausted=wrap_exhausted,
        )

    def build(
        self,
        *,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        budget: RetryBudget | None = None,
    ) -> Retry:
        """The :class:`Retry` policy for this spec, reporting as ``name``."""
        return Retry(
            attempts=self.attempts,
            backoff=self.backoff,
            on=self.on,
            timeout=self.timeout,
            budget=budget,
            respect_retry_after=self.respect_retry_after,
            max_retry_after=self.max_retry_after,
            wrap_exhausted=self.wrap_exhausted,
            name=name,
            clock=clock,
            rng=rng or random.Random(),
            hooks=tuple(hooks),
        )
