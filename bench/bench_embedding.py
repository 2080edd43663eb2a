"""The embedding service on each backend vs in-process SentenceTransformer.encode and vs Infinity.

All run the real all-MiniLM-L6-v2 weights on the CPU of this machine. Each
servicegrid backend (torch, ONNX Runtime fp32, ONNX Runtime int8) is its own
``servicegrid serve embedding`` process, called through EmbeddingClient from
this process, so servers and clients share the same cores, as a co-located
deployment would. Infinity (``infinity-emb``) serves the same weights from its
own virtual environment (built on first use, see ``_infinity.py``) with each
of its CPU engines (torch, and optimum: ONNX Runtime). Every text is unique, so
no cache answers. Rounds are interleaved: in-process batch 32 first, then each
load on each server; each figure is divided by the one measured moments
before it on the same round, and the tables give medians.

    .venv/bin/python bench/bench_embedding.py [--backends torch onnx onnx-int8]
        [--infinity-engines torch optimum | --no-infinity] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
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

LOADS = {"single64": (64, 1), "batch32": (4, 32)}
"""name: (concurrent callers, texts per call)"""
GOALS = {"single64": 1.3, "batch32": 1.0}
"""servicegrid's best over Infinity's best, per load"""
BASE = "Clinical guidelines recommend metformin as first-line therapy for type 2 diabetes"

Call = Callable[[list[str]], Awaitable[object]]


def texts(tag: str, count: int) -> list[str]:
    return [f"{BASE} ({tag} {i})" for i in range(count)]


def in_process(
    embedder: SentenceTransformerEmbedder, batch_size: int, tag: str, count: int
) -> float:
    """Texts per second of plain ``encode`` at ``batch_size``."""
    batch = texts(f"in-process {batch_size} {tag}", count)
    started = time.perf_counter()
    embedder.encode(batch, batch_size=batch_size)
    return len(batch) / (time.perf_counter() - started)


async def load(
    call: Call, *, concurrency: int, per_call: int, tag: str, total: int
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


class Runs:
    """Per-round figures: rates[key] and latencies[key] for key = (server, load)."""

    def __init__(self) -> None:
        self.base32: list[float] = []
        self.rates: dict[tuple[str, str], list[float]] = {}
        self.latencies: dict[tuple[str, str], list[float]] = {}
        self.sweep: dict[int, tuple[float, float, float]] = {}

    def add(self, key: tuple[str, str], rate: float, latencies: list[float]) -> None:
        self.rates.setdefault(key, []).append(rate)
        self.latencies.setdefault(key, []).extend(latencies)


async def measure(
    embedder: SentenceTransformerEmbedder,
    servers: dict[str, str],
    *,
    rounds: int,
    count: int,
    sweep_server: str | None,
) -> Runs:
    """``servers`` maps a label to a gRPC address (servicegrid) or an http URL (Infinity)."""
    runs = Runs()
    batch = embedding_service_pb2.EmbeddingConfig(batch_size=32)
    async with contextlib.AsyncExitStack() as stack:
        calls: dict[str, Call] = {}
        for label, address in servers.items():
            if address.startswith("http"):
                http = await stack.enter_async_context(_infinity.client(address))
                calls[label] = lambda chunk, http=http: _infinity.embed(http, chunk)
            else:
                config = ServiceClientConfig(service_url=address, timeout=120.0)
                client = await stack.enter_async_context(
                    EmbeddingClient(config=config, registry=None)
                )
                calls[label] = lambda chunk, client=client: client.generate_embeddings(
                    texts=chunk, config=batch
                )
        for label, call in calls.items():
            await load(call, concurrency=16, per_call=1, tag=f"{label} warm-up", total=256)
        for r in range(rounds):
            runs.base32.append(in_process(embedder, 32, str(r), count))
            for name, (concurrency, per_call) in LOADS.items():
                for label, call in calls.items():
                    rate, latencies = await load(
                        call,
                        concurrency=concurrency,
                        per_call=per_call,
                        tag=f"{label} {name} {r}",
                        total=count,
                    )
                    runs.add((label, name), rate, latencies)
        if sweep_server is not None:
            for concurrency in (1, 16, 64):
                total = min(128, count) if concurrency == 1 else count
                rate, latencies = await load(
                    calls[sweep_server],
                    concurrency=concurrency,
                    per_call=1,
                    tag=f"sweep {concurrency}",
                    total=total,
                )
                runs.sweep[concurrency] = (rate, pct(latencies, 0.5), pct(latencies, 0.99))
    return runs


@contextlib.contextmanager
def our_server(backend: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "servicegrid.cli", "serve", "embedding", "--port", str(port)]
    env = {
        **os.environ,
        "SERVICEGRID_DEVICE": "cpu",
        "SERVICEGRID_LOG_LEVEL": "WARNING",
        "SERVICEGRID_EMBEDDING_BACKEND": backend,
    }
    with logged_process(command, env, f"service-{backend}", prefix="bench-embedding"):
        asyncio.run(wait_serving(port, within=300.0))
        yield f"127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> dict[str, list[list[object]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--infinity-engines", nargs="+", default=["torch", "optimum"])
    parser.add_argument("--no-infinity", action="store_true", help="skip Infinity")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=512, help="texts per load and round")
    parser.add_argument(
        "--quick", action="store_true", help="the suite's short run: ONNX fp32, 1 round, 64 texts"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.backends, args.no_infinity, args.rounds, args.texts = ["onnx"], True, 1, 64
    model_path = resolve_model_path(MINILM_NAME)
    embedder = SentenceTransformerEmbedder(model_path, name=MINILM_NAME)
    embedder.encode(texts("warm-up", 64))
    base1 = in_process(embedder, 1, "batch 1", min(args.texts, 128))
    engines = [] if args.no_infinity else args.infinity_engines
    with contextlib.ExitStack() as stack:
        servers = {
            f"servicegrid {backend}": stack.enter_context(our_server(backend))
            for backend in args.backends
        }
        for engine in engines:
            servers[f"Infinity {engine}"] = stack.enter_context(
                _infinity.infinity_server(model_path, free_port(), engine=engine)
            )
        # the latency sweep runs on what a CPU gets by default (auto: onnx)
        sweep_server = f"servicegrid {'onnx' if 'onnx' in args.backends else args.backends[0]}"
        runs = asyncio.run(
            measure(
                embedder,
                servers,
                rounds=args.rounds,
                count=args.texts,
                sweep_server=sweep_server,
            )
        )
    ours = [f"servicegrid {b}" for b in args.backends]
    return report(runs, base1, ours, engines, sweep_server)


def report(
    runs: Runs, base1: float, ours: list[str], engines: list[str], sweep_server: str
) -> dict[str, list[list[object]]]:
    """Print the tables for docs/benchmarks.md; return their rows by name."""
    base32 = statistics.median(runs.base32)

    def ratio(over: list[float], under: list[float]) -> float:
        return statistics.median(a / b for a, b in zip(over, under, strict=True))

    rows: list[list[object]] = [
        [
            "in-process encode (torch), batch 1",
            "",
            f"{base1:,.0f}",
            f"{base1 / base32:.2f}",
            "",
            "",
        ],
        ["in-process encode (torch), batch 32", "", f"{base32:,.0f}", "1.00", "", ""],
    ]
    for (label, name), rates in runs.rates.items():
        concurrency, per_call = LOADS[name]
        latencies = runs.latencies[(label, name)]
        rows.append(
            [
                label,
                f"{concurrency} x {per_call}",
                f"{statistics.median(rates):,.0f}",
                f"{ratio(rates, runs.base32):.2f}",
                f"{pct(latencies, 0.5):.0f}",
                f"{pct(latencies, 0.99):.0f}",
            ]
        )
    headers = ["server (MiniLM, CPU)", "callers x texts", "texts/s", "vs in-process b32"]
    print(table([*headers, "p50 ms", "p99 ms"], rows))
    print()
    tables: dict[str, list[list[object]]] = {"throughput": rows}
    if engines:
        versus: list[list[object]] = []
        for name in LOADS:
            best = max(
                (f"Infinity {engine}" for engine in engines),
                key=lambda label: statistics.median(runs.rates[(label, name)]),
            )
            for label in ours:
                versus.append(
                    [
                        name,
                        label,
                        best,
                        f"{ratio(runs.rates[(label, name)], runs.rates[(best, name)]):.2f}",
                        f">= {GOALS[name]}",
                    ]
                )
        print(table(["load", "servicegrid", "Infinity's best", "ratio", "goal"], versus))
        print()
        tables["versus"] = versus
    sweep = [
        [concurrency, f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}"]
        for concurrency, (rate, p50, p99) in runs.sweep.items()
    ]
    print(f"{sweep_server}, concurrent single-text callers:")
    print(table(["callers", "texts/s", "p50 ms", "p99 ms"], sweep))
    tables["sweep"] = sweep
    return tables


if __name__ == "__main__":
    main()
