"""Per-call overhead of the resilience pipeline on the success path, and the cost of a rejection.

Ours: Retry + CircuitBreaker + TokenBucket in one Pipeline.
Peers: tenacity (retry) + pybreaker (breaker) + aiolimiter (async rate limit),
doing the same job. Baseline: calling the function bare, in the same run.

    .venv/bin/python bench/bench_pipeline_overhead.py
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import aiolimiter
import pybreaker
import tenacity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import aper_call_us, per_call_us, table
from servicegrid.errors import ServiceUnavailable, TransportError
from servicegrid.resilience import (
    CircuitBreaker,
    ExponentialBackoff,
    Pipeline,
    Retry,
)
from servicegrid.resilience.ratelimit import TokenBucket

CALLS = 20_000
HUGE = 1e12  # a limiter that never has to wait: we measure bookkeeping, not waiting


async def work() -> int:
    return 1


def sync_work() -> int:
    return 1


def ours() -> Pipeline:
    return Pipeline(
        Retry(attempts=3, backoff=ExponentialBackoff()),
        CircuitBreaker(failure_threshold=5, recovery_timeout=60.0),
        TokenBucket(rate=HUGE, burst=HUGE),
    )


def theirs_async() -> object:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    limiter = aiolimiter.AsyncLimiter(HUGE, 1)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential_jitter(initial=0.1, max=5.0),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )
    async def call() -> int:
        with breaker.calling():
            async with limiter:
                return await work()

    return call


def theirs_sync() -> object:
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential_jitter(initial=0.1, max=5.0),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )
    def call() -> int:
        with breaker.calling():
            return sync_work()

    return call


def rejection_us() -> tuple[float, float]:
    """Microseconds to reject one call with the circuit open: ours vs pybreaker."""
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

    return aper_call_us(ours_reject, CALLS // 4), aper_call_us(peer_reject, CALLS // 4)


def main() -> list[list[object]]:
    pipeline = ours()
    peer_async = theirs_async()
    peer_sync = theirs_sync()

    bare_async = aper_call_us(work, CALLS)
    ours_async = aper_call_us(lambda: pipeline.acall(work), CALLS)
    peer_async_us = aper_call_us(peer_async, CALLS)  # type: ignore[arg-type]
    bare_sync = per_call_us(sync_work, CALLS)
    ours_sync = per_call_us(lambda: pipeline.call(sync_work), CALLS)
    peer_sync_us = per_call_us(peer_sync, CALLS)  # type: ignore[arg-type]
    ours_reject, peer_reject = rejection_us()

    rows: list[list[object]] = [
        [
            "async success path (retry+breaker+limiter)",
            f"{ours_async - bare_async:.2f}",
            f"{peer_async_us - bare_async:.2f}",
            f"{(peer_async_us - bare_async) / (ours_async - bare_async):.1f}x",
        ],
        [
            "sync success path (retry+breaker)",
            f"{ours_sync - bare_sync:.2f}",
            f"{peer_sync_us - bare_sync:.2f}",
            f"{(peer_sync_us - bare_sync) / (ours_sync - bare_sync):.1f}x",
        ],
        [
            "reject with circuit open (async, whole call)",
            f"{ours_reject:.2f}",
            f"{peer_reject:.2f}",
            f"{peer_reject / ours_reject:.1f}x",
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
    asyncio.set_event_loop_policy(None)
    main()
