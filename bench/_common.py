"""Shared helpers for the benchmarks: timing loops, percentiles, a plain-text table, and
servicegrid processes with their logs kept for when something fails."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def pct(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank below)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.contextmanager
def logged_process(
    argv: list[str], env: dict[str, str], name: str, *, prefix: str, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` run from ``cwd`` (the repository root), its output in a temporary file whose end is
    printed if anything fails; SIGTERM on the way out, SIGKILL after 60 s."""
    log: IO[str] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - read on failure
        "w+", prefix=f"{prefix}-{name}-", suffix=".log", delete=False
    )
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=log)
    try:
        yield child
    except BaseException:
        log.seek(0)
        print(f"the {name}'s log ({log.name}) ends:\n{log.read()[-4000:]}", file=sys.stderr)
        raise
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


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
