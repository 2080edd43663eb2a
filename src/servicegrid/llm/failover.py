"""Failover and hedging: run one request's attempts over the pool until a host answers.

A request tries each host at most once, makes at most ``max_attempts``
attempts, and starts none after its ``deadline`` (an absolute ``clock.now()``).
A retryable error (connection refused, timeout, 5xx, 429: the error table
decides) moves on to the next host the strategy picks; any other error is
raised at once. When every attempt failed, the last error is raised, with
every attempt listed in ``details["attempts"]``; when no host could be tried
at all, the pool says why (:meth:`HostPool.unavailable`).

The attempt function settles its :class:`Attempt` (succeeded, failed or
abandoned) and raises the typed error of a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from servicegrid.clock import Clock
from servicegrid.errors import ServiceError
from servicegrid.llm.hosts import Attempt
from servicegrid.llm.pool import HostPool

__all__ = ["AttemptFn", "RouteStats", "run", "run_hedged"]

T = TypeVar("T")

AttemptFn = Callable[[Attempt, float], Awaitable[T]]
"""Make one attempt with the lease and the seconds left; settle the lease."""


@dataclass(slots=True)
class RouteStats:
    """What routing did across all requests of a client."""

    failovers: int = 0
    hedges: int = 0


def _give_up(pool: HostPool, errors: list[tuple[str, ServiceError]]) -> ServiceError:
    if not errors:
        return pool.unavailable()
    last = errors[-1][1]
    last.details.setdefault(
        "attempts", [{"host": host, "error": f"{type(e).__name__}: {e}"} for host, e in errors]
    )
    return last


def _retryable(error: BaseException) -> bool:
    return isinstance(error, ServiceError) and error.retryable


async def run(
    pool: HostPool,
    attempt: AttemptFn[T],
    *,
    max_attempts: int,
    deadline: float,
    clock: Clock,
    stats: RouteStats,
) -> T:
    """Attempts one after another until one answers; see the module docstring."""
    tried: list[str] = []
    errors: list[tuple[str, ServiceError]] = []
    while len(tried) < max_attempts:
        left = deadline - clock.now()
        if left <= 0 and tried:
            break
        lease = pool.lease(tried)
        if lease is None:
            break
        tried.append(lease.host.name)
        if len(tried) > 1:
            stats.failovers += 1
        try:
            return await attempt(lease, left)
        except ServiceError as error:
            if not error.retryable:
                raise
            errors.append((lease.host.name, error))
    raise _give_up(pool, errors)


async def run_hedged(
    pool: HostPool,
    attempt: AttemptFn[T],
    *,
    hedge_after: float,
    max_attempts: int,
    deadline: float,
    clock: Clock,
    stats: RouteStats,
) -> T:
    """Like :func:`run`, but when the attempt in flight has not answered ``hedge_after``
    seconds after it started, send the same request to one more host and take whichever
    answers first, cancelling the other. At most one hedge per request."""
    tried: list[str] = []
    errors: list[tuple[str, ServiceError]] = []
    running: dict[asyncio.Future[T], str] = {}

    def launch() -> bool:
        left = deadline - clock.now()
        if len(tried) >= max_attempts or (left <= 0 and tried):
            return False
        lease = pool.lease(tried)
        if lease is None:
            return False
        tried.append(lease.host.name)
        task = asyncio.ensure_future(attempt(lease, left))
        # a task cancelled before its first step never runs its own cleanup
        task.add_done_callback(lambda _: lease.abandoned())
        running[task] = lease.host.name
        return True

    hedge_at: float | None = None
    try:
        if launch():
            hedge_at = clock.now() + hedge_after
        while running:
            wait = None
            if hedge_at is not None and len(running) == 1:
                wait = max(hedge_at - clock.now(), 0.0)
            done, _ = await asyncio.wait(running, timeout=wait, return_when="FIRST_COMPLETED")
            if not done:
                hedge_at = None
                if launch():
                    stats.hedges += 1
                continue
            failed: list[tuple[str, BaseException]] = []
            for task in done:
                host = running.pop(task)
                error = task.exception()
                if error is None:
                    return task.result()
                failed.append((host, error))
            for host, error in failed:
                if not _retryable(error):
                    raise error
                assert isinstance(error, ServiceError)
                errors.append((host, error))
            if not running and launch():
                stats.failovers += 1
                if hedge_at is not None:  # the replacement gets its own hedge delay
                    hedge_at = clock.now() + hedge_after
        raise _give_up(pool, errors)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
