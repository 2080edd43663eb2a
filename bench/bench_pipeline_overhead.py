"""Per-call overhead of the resilience pipeline on the success path, and the cost of a rejection.

Ours: Retry + CircuitBreaker (+ TokenBucket, async) in one Pipeline.
Peers: tenacity (retry) + pybreaker (breaker) + aiolimiter (async rate limit),
doing the same job. Baseline: calling the function bare, in the same run.

A rejection is the whole call through our pipeline (retry and breaker) with the
circuit open, against pybreaker's own rejection alone (no retry layer around it).

Every series is measured in the same rounds, one after the other, so drift on
a shared machine hits them alike; each figure is the best round.

    .venv/bin/python bench/bench_pipeline_overhead.py
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiolimiter
import pybreaker
import tenacity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table
from servicegrid.errors import ServiceUnavailable, TransportError
from servicegrid.resilience import (
    CircuitBreaker,
    ExponentialBackoff,
    Pipeline,
    Retry,
)
from servicegrid.resilience.ratelimit import TokenBucket

CALLS = 20_000
ROUNDS = 15
HUGE = 1e12  # a limiter that never has to wait: we measure bookkeeping, not waiting


async def work() -> int:
    return 1


def sync_work() -> int:
    return 1


def _retrying() -> dict[str, Any]:
    """tenacity's arguments for the same retry as ours: 3 attempts, exponential jitter."""
    return {
        "stop": tenacity.stop_after_attempt(3),
        "wait": tenacity.wait_exponential_jitter(multiplier=0.1, max=5.0),
        "retry": tenacity.retry_if_exception_type(TransportError),
        "reraise": True,
    }


def ours() -> Pipeline:
    return Pipeline(
        Retry(attempts=3, backoff=ExponentialBackoff()),
        CircuitBreaker(failure_threshold=5, recovery_timeout=60.0),
        TokenBucket(rate=HUGE, burst=HUGE),
    )


def ours_sync() -> Pipeline:
    return Pipeline(
        Retry(attempts=3, backoff=ExponentialBackoff()),
        CircuitBreaker(failure_threshold=5, recovery_timeout=60.0),
    )


def theirs_async() -> Callable[[], Awaitable[int]]:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    limiter = aiolimiter.AsyncLimiter(HUGE, 1)

    @tenacity.retry(**_retrying())
    async def call() -> int:
        with breaker.calling():
            async with limiter:
                return await work()

    return call  # type: ignore[no-any-return]


def theirs_sync() -> Callable[[], int]:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    @tenacity.retry(**_retrying())
    def call() -> int:
        with breaker.calling():
            return sync_work()

    return call  # type: ignore[no-any-return]


def rejecting() -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """A rejected call with the circuit open: ours (retry + breaker) and pybreaker's."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=3600.0)
    breaker.force_open()
    pipeline = Pipeline(Retry(attempts=3), breaker)

    async def ours_reject() -> None:
        with contextlib.suppress(ServiceUnavailable):
            await pipeline.acall(work)

    peer = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    peer.open()

    async def peer_reject() -> None:
        with contextlib.suppress(pybreaker.CircuitBreakerError), peer.calling():
            await work()

    return ours_reject, peer_reject


def _sync_round(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


async def _async_round(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


def measure() -> dict[str, float]:
    """Microseconds per call of every series: the best of ROUNDS interleaved rounds."""
    pipeline, sync_pipeline = ours(), ours_sync()
    peer_async, peer_sync = theirs_async(), theirs_sync()
    ours_reject, peer_reject = rejecting()
    sync_series: dict[str, Callable[[], object]] = {
        "bare sync": sync_work,
        "ours sync": lambda: sync_pipeline.call(sync_work),
        "peers sync": peer_sync,
    }
    async_series: dict[str, tuple[Callable[[], Awaitable[object]], int]] = {
        "bare async": (work, CALLS),
        "ours async": (lambda: pipeline.acall(work), CALLS),
        "peers async": (peer_async, CALLS),
        "ours reject": (ours_reject, CALLS // 4),
        "peer reject": (peer_reject, CALLS // 4),
    }
    best: dict[str, float] = {}

    async def rounds() -> None:  # one event loop for all: aiolimiter's limiter belongs to one
        for _ in range(ROUNDS):
            for name, fn in sync_series.items():
                taken = _sync_round(fn, CALLS)
                best[name] = min(best.get(name, taken), taken)
            for name, (afn, calls) in async_series.items():
                taken = await _async_round(afn, calls)
                best[name] = min(best.get(name, taken), taken)

    asyncio.run(rounds())
    return best


def main() -> list[list[object]]:
    best = measure()
    bare_async, bare_sync = best["bare async"], best["bare sync"]
    ours_async, peers_async = best["ours async"] - bare_async, best["peers async"] - bare_async
    ours_sync_us, peers_sync = best["ours sync"] - bare_sync, best["peers sync"] - bare_sync
    rows: list[list[object]] = [
        [
            "async success path (retry+breaker+limiter)",
            f"{ours_async:.2f}",
            f"{peers_async:.2f}",
            f"{peers_async / ours_async:.1f}x",
        ],
        [
            "sync success path (retry+breaker)",
            f"{ours_sync_us:.2f}",
            f"{peers_sync:.2f}",
            f"{peers_sync / ours_sync_us:.1f}x",
        ],
        [
            "reject, circuit open (ours: whole call; peer: pybreaker alone)",
            f"{best['ours reject']:.2f}",
            f"{best['peer reject']:.2f}",
            f"{best['peer reject'] / best['ours reject']:.1f}x",
        ],
    ]
    print(f"bare call: async {bare_async:.2f} µs, sync {bare_sync:.2f} µs (subtracted above)")
    print(
        table(
            [
                "per call, µs",
                "servicegrid",
                "tenacity+pybreaker+aiolimiter",
                "servicegrid faster by",
            ],
            rows,
        )
    )
    return rows


if __name__ == "__main__":
    main()
