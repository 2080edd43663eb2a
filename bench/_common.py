"""Shared helpers for the benchmarks: timing loops and a plain-text table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence


def per_call_us(fn: Callable[[], object], calls: int, rounds: int = 9) -> float:
    """Best of ``rounds`` of the mean microseconds per call of ``fn``.

    The best round is the one least disturbed by other work on a shared machine
    (the estimator ``timeit`` uses); every figure in one table is taken the same way.
    """
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return min(samples)


def aper_call_us(fn: Callable[[], Awaitable[object]], calls: int, rounds: int = 9) -> float:
    """Like :func:`per_call_us` for a coroutine function, awaited one call at a time."""

    async def run() -> float:
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                await fn()
            samples.append((time.perf_counter() - start) / calls * 1e6)
        return min(samples)

    return asyncio.run(run())


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, ready to paste into docs/benchmarks.md."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
