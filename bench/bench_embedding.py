"""The embedding service through EmbeddingClient vs in-process SentenceTransformer.encode.

Both run the real all-MiniLM-L6-v2 weights on the CPU of this machine; the
service is a separate process (``servicegrid serve embedding``) and the client
runs here, so the two share the same cores, as a co-located deployment would.
Every text is unique, so the service's cache never answers. Baseline and
service runs are interleaved (ROUNDS rounds of TEXTS texts each), each service
figure divided by the baseline measured just before it; the tables give medians.

    .venv/bin/python bench/bench_embedding.py [--no-infinity]

The same loads go to Infinity (``infinity-emb``) serving the same weights from
its own virtual environment (built on first use, see ``_infinity.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.services.test_service_processes import wait_serving  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402

import _infinity  # noqa: E402
from _common import logged_process, pct, table  # noqa: E402
from servicegrid.clients import EmbeddingClient, ServiceClientConfig  # noqa: E402
from servicegrid.models import MINILM_NAME, SentenceTransformerEmbedder, resolve_model_path  # noqa: E402
from servicegrid.proto import embedding_service_pb2  # noqa: E402

TEXTS = 512
ROUNDS = 5
LOADS = {"single64": (64, 1), "batch32": (4, 32)}
"""name: (concurrent callers, texts per call)"""
INFINITY_LOADS = tuple(f"infinity {key}" for key in LOADS)
BASE = "Clinical guidelines recommend metformin as first-line therapy for type 2 diabetes"


def texts(tag: str, count: int = TEXTS) -> list[str]:
    return [f"{BASE} ({tag} {i})" for i in range(count)]


def in_process(embedder: SentenceTransformerEmbedder, batch_size: int, tag: str) -> float:
    """Texts per second of plain ``encode`` at ``batch_size``."""
    batch = texts(f"in-process {batch_size} {tag}")
    started = time.perf_counter()
    embedder.encode(batch, batch_size=batch_size)
    return len(batch) / (time.perf_counter() - started)


Call = Callable[[list[str]], Awaitable[object]]


async def load(
    call: Call, *, concurrency: int, per_call: int, tag: str, total: int = TEXTS
) -> tuple[float, list[float]]:
    """(texts per second, per-call latencies in ms) for ``concurrency`` callers of ``call``."""
    pending = texts(tag, total)
    latencies: list[float] = []

    async def caller() -> None:
        while pending:
            chunk = [pending.pop() for _ in range(min(per_call, len(pending)))]
            started = time.perf_counter()
            await call(chunk)
            latencies.append(1000 * (time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


async def measure(
    embedder: SentenceTransformerEmbedder, port: int, infinity_url: str | None
) -> dict[str, list[float]]:
    """Interleaved rounds: in-process batch 32, then each load on each server, ROUNDS times.

    The shared machine's speed drifts over minutes, so each service figure is
    compared with the baseline taken moments before it, and the medians reported.
    """
    config = ServiceClientConfig(service_url=f"127.0.0.1:{port}", timeout=120.0)
    batch = embedding_service_pb2.EmbeddingConfig(batch_size=32)
    runs: dict[str, list[float]] = {key: [] for key in ("base32", *LOADS, *INFINITY_LOADS)}
    async with (
        EmbeddingClient(config=config, registry=None) as client,
        _infinity.client(infinity_url or "http://unused") as http,
    ):

        async def ours(chunk: list[str]) -> object:
            return await client.generate_embeddings(texts=chunk, config=batch)

        async def theirs(chunk: list[str]) -> object:
            return await _infinity.embed(http, chunk)

        servers: list[tuple[str, Call]] = [("", ours)]
        if infinity_url is not None:
            servers.append(("infinity ", theirs))
        for prefix, call in servers:
            await load(call, concurrency=16, per_call=1, tag=f"{prefix}warm-up", total=256)
        for r in range(ROUNDS):
            runs["base32"].append(in_process(embedder, 32, str(r)))
            for key, (concurrency, per_call) in LOADS.items():
                for prefix, call in servers:
                    rate, _ = await load(
                        call, concurrency=concurrency, per_call=per_call, tag=f"{prefix}{key} {r}"
                    )
                    runs[f"{prefix}{key}"].append(rate)
        for concurrency in (1, 16, 64):
            total = 128 if concurrency == 1 else 512
            rate, latencies = await load(
                ours, concurrency=concurrency, per_call=1, tag=f"lat {concurrency}", total=total
            )
            runs[f"lat{concurrency}"] = [rate, pct(latencies, 0.5), pct(latencies, 0.99)]
    return runs


def main(argv: list[str] | None = None) -> list[list[object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-infinity", action="store_true", help="skip the comparison with Infinity"
    )
    args = parser.parse_args(argv)
    model_path = resolve_model_path(MINILM_NAME)
    embedder = SentenceTransformerEmbedder(model_path, name=MINILM_NAME)
    embedder.encode(texts("warm-up", 64))
    base1 = in_process(embedder, 1, "batch 1")

    port = free_port()
    with logged_process(
        [sys.executable, "-m", "servicegrid.cli", "serve", "embedding", "--port", str(port)],
        {**os.environ, "SERVICEGRID_DEVICE": "cpu", "SERVICEGRID_LOG_LEVEL": "WARNING"},
        "service",
        prefix="bench-embedding",
    ):
        infinity = (
            contextlib.nullcontext(None)
            if args.no_infinity
            else _infinity.infinity_server(model_path, free_port())
        )
        with infinity as infinity_url:
            asyncio.run(wait_serving(port))
            runs = asyncio.run(measure(embedder, port, infinity_url))
    return report(runs, base1, with_infinity=not args.no_infinity)


def report(
    runs: dict[str, list[float]], base1: float, *, with_infinity: bool
) -> list[list[object]]:
    """Print the tables for docs/benchmarks.md; return the first one's rows."""
    base32 = statistics.median(runs["base32"])

    def rate(key: str) -> str:
        return f"{statistics.median(runs[key]):,.0f}"

    def ratio(key: str, over: str = "base32") -> str:
        per_round = [a / b for a, b in zip(runs[key], runs[over], strict=True)]
        return f"{statistics.median(per_round):.2f}"

    rows: list[list[object]] = [
        ["in-process encode, batch 1 (reference)", f"{base1:,.0f}", f"{base1 / base32:.2f}", ""],
        ["in-process encode, batch 32 (baseline)", f"{base32:,.0f}", "1.00", ""],
        [
            "service: 64 concurrent single-text calls",
            rate("single64"),
            ratio("single64"),
            ">= 0.85",
        ],
        ["service: batch-32 calls (4 callers)", rate("batch32"), ratio("batch32"), ">= 0.95"],
    ]
    print(table(["texts/s (MiniLM, CPU)", "texts/s", "vs in-process batch 32", "goal"], rows))
    print()
    if with_infinity:
        versus = [
            [
                f"{concurrency} callers x {per_call} text{'s' if per_call > 1 else ''}",
                rate(key),
                rate(f"infinity {key}"),
                ratio(key, over=f"infinity {key}"),
                ">= 1.3",
            ]
            for key, (concurrency, per_call) in LOADS.items()
        ]
        headers = ["load (MiniLM, CPU)", "servicegrid texts/s", "Infinity texts/s", "ratio", "goal"]
        print(table(headers, versus))
        print()
    latency_rows = []
    for concurrency in (1, 16, 64):
        throughput, p50, p99 = runs[f"lat{concurrency}"]
        latency_rows.append([concurrency, f"{throughput:,.0f}", f"{p50:.1f}", f"{p99:.1f}"])
    print(table(["concurrent single-text callers", "texts/s", "p50 ms", "p99 ms"], latency_rows))
    return rows


if __name__ == "__main__":
    main()
