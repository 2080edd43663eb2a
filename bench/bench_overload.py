"""Goodput under overload: the embedding service given far more long texts than it can embed.

Two loads, each caller with its own client (its own channel and circuit
breaker, as independent users have). A refused caller waits as the refusal's
retry-after says and tries again with what is left of its deadline, as our
clients do; every refused attempt is timed:

- 64 callers x 512 texts of about 200 words, each with a 120 s deadline;
- 32 callers x 256 such texts, each with a 60 s deadline.

Before them, the service's capacity on the same kind of texts is measured
(4 callers x 32 texts until 256 are done, no deadline pressure). Goodput is
the texts in successful answers per second of the load's wall time (until
the last caller is answered or gives up), as a ratio of that capacity. The
service runs as its own process (``servicegrid serve embedding``) on the same
cores; its resident memory is sampled from ``/proc`` throughout.

    .venv/bin/python bench/bench_overload.py [--quick]

``--quick`` runs both loads with a quarter of the callers, an eighth of the texts
and an eighth of the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.services.test_service_processes import wait_serving  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402

from _common import logged_process, table  # noqa: E402
from servicegrid.clients import EmbeddingClient, ServiceClientConfig  # noqa: E402
from servicegrid.errors import DeadlineExceeded, ResourceExhausted  # noqa: E402
from servicegrid.proto import embedding_service_pb2  # noqa: E402

WORDS_PER_TEXT = 200
LOADS = {"64 x 512, 120 s": (64, 512, 120.0), "32 x 256, 60 s": (32, 256, 60.0)}
"""name: (callers, texts per call, deadline seconds)"""
CAPACITY_TEXTS = 256
_PROSE = (
    "patients with type 2 diabetes were randomised to metformin or placebo and "
    "followed for cardiovascular outcomes renal function glycaemic control weight "
    "change adverse events hospital admission mortality the trial enrolled adults "
    "across twelve centres baseline characteristics were similar between groups "
    "primary endpoint secondary analysis showed reduction in risk confidence interval "
    "hazard ratio clinical guidelines recommend first line therapy lifestyle "
    "intervention dose escalation gastrointestinal tolerance lactic acidosis rare "
    "contraindicated severe kidney disease monitoring every year"
)


def texts(tag: str, count: int, rng: random.Random) -> list[str]:
    """``count`` unique texts of WORDS_PER_TEXT words (about 260 tokens: MiniLM reads 256)."""
    vocabulary = _PROSE.split()
    return [
        f"{tag} {index}: " + " ".join(rng.choices(vocabulary, k=WORDS_PER_TEXT))
        for index in range(count)
    ]


class Memory:
    """Samples a process's resident set size from /proc every 100 ms, on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        """Resident bytes now."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def reset_peak(self) -> None:
        self.peak = self.now()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Outcome:
    served: int = 0
    """Callers answered (on their first attempt or after waiting as told)."""
    refused: int = 0
    """Callers whose last attempt was refused: no retry-after, or one past their deadline."""
    late: int = 0
    """Callers whose last attempt ended DEADLINE_EXCEEDED."""
    refusals: list[float] = field(default_factory=list)
    """Seconds each refused attempt took to be refused."""
    other: list[str] = field(default_factory=list)
    texts_served: int = 0
    wall: float = 0.0


def client(port: int, timeout: float) -> EmbeddingClient:
    config = ServiceClientConfig(service_url=f"127.0.0.1:{port}", timeout=timeout, retry_attempts=1)
    return EmbeddingClient(config=config, registry=None)


async def capacity(port: int, rng: random.Random) -> float:
    """Texts per second with 4 callers x 32 texts and no deadline pressure."""
    pending = texts("capacity", CAPACITY_TEXTS, rng)
    async with client(port, 600.0) as embedder:

        async def caller() -> None:
            while pending:
                chunk = [pending.pop() for _ in range(min(32, len(pending)))]
                await embedder.generate_embeddings(texts=chunk)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(4)))
        return CAPACITY_TEXTS / (time.perf_counter() - started)


async def overload(
    port: int, callers: int, per_call: int, deadline: float, rng: random.Random
) -> Outcome:
    outcome = Outcome()
    batches = [texts(f"caller {i}", per_call, rng) for i in range(callers)]
    clients = [client(port, deadline) for _ in range(callers)]
    for opened in clients:
        await opened.__aenter__()
        await opened.channel.channel_ready()

    async def call(embedder: EmbeddingClient, batch: list[str]) -> None:
        """One caller: waits as a refusal's retry-after says, tries again within its deadline."""
        end = time.perf_counter() + deadline
        while True:
            started = time.perf_counter()
            left = end - started
            try:
                await embedder.generate_embeddings(
                    texts=batch, config=embedding_service_pb2.EmbeddingConfig(timeout_seconds=left)
                )
            except ResourceExhausted as refused:
                outcome.refusals.append(time.perf_counter() - started)
                wait = refused.retry_after
                if wait is None or time.perf_counter() + wait >= end:
                    outcome.refused += 1
                    return
                await asyncio.sleep(wait)
            except DeadlineExceeded:
                outcome.late += 1
                return
            except Exception as error:
                outcome.other.append(f"{type(error).__name__}: {error}")
                return
            else:
                outcome.served += 1
                outcome.texts_served += len(batch)
                return

    started = time.perf_counter()
    await asyncio.gather(*(call(c, b) for c, b in zip(clients, batches, strict=True)))
    outcome.wall = time.perf_counter() - started
    for opened in clients:
        await opened.close()
    return outcome


async def settle(port: int, memory: Memory) -> int:
    """Resident bytes once the engine is idle and memory has stopped falling (3 quiet samples)."""
    async with client(port, 10.0) as embedder:
        while True:
            stats = await embedder.get_stats()
            if not stats["queue_depth"] and stats["extra"].get("backlog_seconds", 0.0) < 1e-3:
                break
            await asyncio.sleep(0.2)
    samples = [memory.now()]
    while len(samples) < 4 or samples[-1] < samples[-4]:
        await asyncio.sleep(0.5)
        samples.append(memory.now())
        if len(samples) > 40:
            break
    return samples[-1]


def mib(size: int) -> str:
    return f"{size / 2**20:,.0f}"


async def measure(port: int, memory: Memory, loads: dict[str, tuple[int, int, float]]) -> None:
    rng = random.Random(2026)
    idle = memory.now()
    base = await capacity(port, rng)
    rows = []
    memory_rows = [["idle after start", mib(idle), "", ""]]
    for name, (callers, per_call, deadline) in loads.items():
        before = await settle(port, memory)
        memory.reset_peak()
        outcome = await overload(port, callers, per_call, deadline, rng)
        peak = memory.peak
        after = await settle(port, memory)
        goodput = outcome.texts_served / outcome.wall
        refusals = outcome.refusals or [0.0]
        rows.append(
            [
                name,
                outcome.served,
                outcome.refused,
                outcome.late + len(outcome.other),
                len(outcome.refusals),
                f"{goodput:.1f}",
                f"{goodput / base:.2f}",
                f"{1000 * statistics.median(refusals):.0f}",
                f"{1000 * max(refusals):.0f}",
                f"{outcome.wall:.0f}",
            ]
        )
        memory_rows.append(
            [name, mib(before), mib(peak), f"{mib(after)} ({after / idle:.2f}x idle)"]
        )
        for problem in outcome.other[:5]:
            print(f"  {name}: {problem}", file=sys.stderr)
    print(f"capacity on these texts: {base:.1f} texts/s (4 callers x 32 texts, {CAPACITY_TEXTS})")
    print()
    headers = [
        "load (callers x texts, deadline)",
        "answered",
        "refused",
        "late/failed",
        "refusals",
        "goodput texts/s",
        "vs capacity",
        "refusal p50 ms",
        "refusal max ms",
        "wall s",
    ]
    print(table(headers, rows))
    print()
    print(table(["service memory (MiB)", "before", "peak", "after"], memory_rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a much smaller version of each load")
    args = parser.parse_args(argv)
    loads = LOADS
    if args.quick:
        loads = {
            f"{c // 4} x {n // 8}, {d / 8:.1f} s": (c // 4, n // 8, d / 8)
            for c, n, d in LOADS.values()
        }
    port = free_port()
    with logged_process(
        [sys.executable, "-m", "servicegrid.cli", "serve", "embedding", "--port", str(port)],
        {
            **os.environ,
            "SERVICEGRID_DEVICE": "cpu",
            "SERVICEGRID_LOG_LEVEL": os.environ.get("BENCH_SERVICE_LOG_LEVEL", "ERROR"),
        },
        "service",
        prefix="bench-overload",
    ) as server:
        asyncio.run(wait_serving(port))
        with Memory(server.pid) as memory:
            asyncio.run(measure(port, memory, loads))


if __name__ == "__main__":
    main()
