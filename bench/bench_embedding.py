"""The embedding service through EmbeddingClient vs in-process SentenceTransformer.encode.

Both run the real all-MiniLM-L6-v2 weights on the CPU of this machine; the
service is a separate process (``servicegrid serve embedding``) and the client
runs here, so the two share the same cores, as a co-located deployment would.
Every text is unique, so the service's cache never answers.

    .venv/bin/python bench/bench_embedding.py
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.services.test_service_processes import wait_serving  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402

from _common import table  # noqa: E402
from servicegrid.clients import EmbeddingClient, ServiceClientConfig  # noqa: E402
from servicegrid.models import MINILM_NAME, SentenceTransformerEmbedder, resolve_model_path  # noqa: E402
from servicegrid.proto import embedding_service_pb2  # noqa: E402

TEXTS = 1_024
BASE = "Clinical guidelines recommend metformin as first-line therapy for type 2 diabetes"


def texts(tag: str, count: int = TEXTS) -> list[str]:
    return [f"{BASE} ({tag} {i})" for i in range(count)]


def in_process(embedder: SentenceTransformerEmbedder, batch_size: int) -> float:
    """Texts per second of plain ``encode`` at ``batch_size`` (best of 3)."""
    best = 0.0
    for attempt in range(3):
        batch = texts(f"in-process {batch_size} {attempt}")
        started = time.perf_counter()
        embedder.encode(batch, batch_size=batch_size)
        best = max(best, len(batch) / (time.perf_counter() - started))
    return best


async def through_service(
    client: EmbeddingClient, *, concurrency: int, per_call: int, tag: str, total: int = TEXTS
) -> tuple[float, list[float]]:
    """(texts per second, per-call latencies in ms) for ``concurrency`` callers."""
    pending = texts(tag, total)
    latencies: list[float] = []
    config = embedding_service_pb2.EmbeddingConfig(batch_size=32)

    async def caller() -> None:
        while pending:
            chunk = [pending.pop() for _ in range(min(per_call, len(pending)))]
            started = time.perf_counter()
            await client.generate_embeddings(texts=chunk, config=config)
            latencies.append(1000 * (time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_service(port: int) -> dict[str, object]:
    config = ServiceClientConfig(service_url=f"127.0.0.1:{port}", timeout=120.0)
    results: dict[str, object] = {}
    async with EmbeddingClient(config=config, registry=None) as client:
        await through_service(client, concurrency=16, per_call=1, tag="warm-up", total=256)
        runs = [
            (await through_service(client, concurrency=64, per_call=1, tag=f"single {r}"))[0]
            for r in range(3)
        ]
        results["single64"] = max(runs)
        runs = [
            (await through_service(client, concurrency=4, per_call=32, tag=f"batch {r}"))[0]
            for r in range(3)
        ]
        results["batch32"] = max(runs)
        for concurrency in (1, 16, 64):
            total = 128 if concurrency == 1 else 512
            rate, latencies = await through_service(
                client, concurrency=concurrency, per_call=1, tag=f"lat {concurrency}", total=total
            )
            results[f"lat{concurrency}"] = (rate, pct(latencies, 0.5), pct(latencies, 0.99))
    return results


def main() -> list[list[object]]:
    embedder = SentenceTransformerEmbedder(resolve_model_path(MINILM_NAME), name=MINILM_NAME)
    embedder.encode(texts("warm-up", 64))
    base32 = in_process(embedder, 32)
    base1 = in_process(embedder, 1)

    port = free_port()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server and read on failure
        "w+", prefix="bench-embedding-", suffix=".log", delete=False
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "servicegrid.cli", "serve", "embedding", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "SERVICEGRID_DEVICE": "cpu", "SERVICEGRID_LOG_LEVEL": "WARNING"},
        stdout=log,
        stderr=log,
    )
    try:
        asyncio.run(wait_serving(port))
        measured = asyncio.run(measure_service(port))
    except BaseException:
        log.seek(0)
        print(f"the service's log ({log.name}) ends:\n{log.read()[-4000:]}", file=sys.stderr)
        raise
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    single, batch = float(measured["single64"]), float(measured["batch32"])  # type: ignore[arg-type]
    rows: list[list[object]] = [
        ["in-process encode, batch 1 (reference)", f"{base1:,.0f}", f"{base1 / base32:.2f}", ""],
        ["in-process encode, batch 32 (baseline)", f"{base32:,.0f}", "1.00", ""],
        [
            "service: 64 concurrent single-text calls",
            f"{single:,.0f}",
            f"{single / base32:.2f}",
            ">= 0.85",
        ],
        [
            "service: batch-32 calls (4 callers)",
            f"{batch:,.0f}",
            f"{batch / base32:.2f}",
            ">= 0.95",
        ],
    ]
    print(table(["texts/s (MiniLM, CPU)", "texts/s", "vs in-process batch 32", "goal"], rows))
    print()
    latency_rows = []
    for concurrency in (1, 16, 64):
        rate, p50, p99 = measured[f"lat{concurrency}"]  # type: ignore[misc]
        latency_rows.append([concurrency, f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}"])
    print(table(["concurrent single-text callers", "texts/s", "p50 ms", "p99 ms"], latency_rows))
    return rows


if __name__ == "__main__":
    main()
