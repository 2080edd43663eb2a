"""Retrieval speed: hybrid+rerank search latency and indexing throughput, each against the
embedding service called directly, in the same run.

The embedding and reranking services run as processes on this machine's CPU, their
caches off (every text is computed), and a second reranking service with its cache of
text vectors on (the bi-encoder measures each passage once, then looks it up; the
passages recur as candidates across queries, as they do over a fixed corpus), with the
labelled set of bench_retrieval.py indexed into a fresh local-mode ``HybridIndex``. The
callers run in this process, so the services, Qdrant's local mode and the callers share
the same cores.

- Search: ``HybridRetriever.search(query, limit=10, mode="hybrid+rerank")`` (BM25 and
  dense search, fusion, then the reranking service on the candidates) against the floor
  any dense search pays, ``EmbeddingClient.generate_embeddings([query])``, at 1 and 16
  concurrent callers, each query once per round; hybrid search without the reranking
  step shows what the reranking service costs. Latencies are pooled over the rounds;
  "÷ direct" is our percentile over the direct call's.
- Indexing: ``Indexer`` writing every passage (embedding, BM25 vector, upsert and the
  stale-chunk delete) in batches of 32, into a fresh index each round, against
  embedding the same texts in the same batches directly. "÷ direct" is the median of
  the per-round ratios of chunks per second.

Rounds alternate which target goes first, as the machine's speed drifts over minutes.

    .venv/bin/python bench/bench_orchestrator_speed.py [--quick] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.services.test_service_processes import wait_serving

from _common import pct, table
from bench_retrieval import (
    CALL_TIMEOUT,
    DATA,
    INDEX_BATCH,
    LIMIT,
    SCOPE,
    START_TIMEOUT,
    Passage,
    client_config,
    index_passages,
    load_set,
    model_service,
    model_services,
    retriever_in,
)
from servicegrid.clients import RerankingClient
from servicegrid.proto import embedding_service_pb2
from servicegrid.retrieval.retriever import HybridRetriever, Mode

CALLERS = (1, 16)
TARGETS = (
    "hybrid+rerank search",
    "hybrid+rerank, reranker cache on",
    "hybrid search",
    "direct embed",
)


@dataclass(frozen=True)
class Plan:
    """How long a run is: rounds of each measure, and how many queries and passages."""

    search_rounds: int
    queries: int | None
    index_rounds: int
    passages: int | None


FULL = Plan(search_rounds=2, queries=None, index_rounds=3, passages=None)
QUICK = Plan(search_rounds=1, queries=16, index_rounds=1, passages=96)
WARM_UP = 8

Call = Callable[[str], Awaitable[None]]


@dataclass
class Runs:
    """One target's figures at one load: latencies in ms, and rates per round."""

    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)


def calls(retriever: HybridRetriever, cached: HybridRetriever) -> dict[str, Call]:
    """The targets: ``cached`` is ``retriever`` with a reranking service whose cache is on."""
    config = embedding_service_pb2.EmbeddingConfig(normalize=True)

    def search(mode: Mode, retriever: HybridRetriever = retriever) -> Call:
        async def call(query: str) -> None:
            found = await retriever.search(query, scope=SCOPE, limit=LIMIT, mode=mode)
            failed = [use for use in found.uses if use.status != "used"]
            if failed:
                raise RuntimeError(f"{mode} search for {query!r} degraded: {failed}")

        return call

    async def embed(query: str) -> None:
        # the call retriever.embed makes, with the same client
        await retriever.embedding.generate_embeddings(
            [query], retriever.embedding_model, config, timeout=CALL_TIMEOUT
        )

    targets = (search("hybrid+rerank"), search("hybrid+rerank", cached), search("hybrid"), embed)
    return dict(zip(TARGETS, targets, strict=True))


async def load(call: Call, queries: Sequence[str], callers: int) -> Runs:
    """Every query once, by ``callers`` concurrent callers: latencies and queries/s."""
    pending = list(reversed(queries))
    latencies: list[float] = []

    async def caller() -> None:
        while pending:
            query = pending.pop()
            started = time.perf_counter()
            await call(query)
            latencies.append(1000 * (time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return Runs(latencies, [len(queries) / (time.perf_counter() - started)])


async def search_speed(
    targets: dict[str, Call], queries: Sequence[str], rounds: int
) -> dict[int, dict[str, Runs]]:
    for call in targets.values():
        await load(call, queries[:WARM_UP], 1)
    runs = {callers: {target: Runs() for target in TARGETS} for callers in CALLERS}
    for r in range(rounds):
        order = TARGETS if r % 2 == 0 else TARGETS[::-1]
        for callers in CALLERS:
            for target in order:
                got = await load(targets[target], queries, callers)
                runs[callers][target].latencies += got.latencies
                runs[callers][target].rates += got.rates
                print(
                    f"round {r + 1}/{rounds} {callers:>2} callers {target:<32} "
                    f"{got.rates[0]:7.1f} queries/s",
                    file=sys.stderr,
                )
    return runs


async def index_speed(
    ports: tuple[int, int], folder: Path, passages: Sequence[Passage], rounds: int
) -> dict[str, list[float]]:
    """Chunks per second of the Indexer and of the direct embedding calls, per round."""
    rates: dict[str, list[float]] = {"Indexer": [], "direct embed": []}
    config = embedding_service_pb2.EmbeddingConfig(normalize=True)
    texts = [p.chunk().text for p in passages]
    for r in range(rounds):
        order = list(rates) if r % 2 == 0 else list(rates)[::-1]
        async with retriever_in(folder / f"round-{r}", ports) as retriever:
            for target in order:
                started = time.perf_counter()
                if target == "Indexer":
                    await index_passages(retriever, passages, batch=INDEX_BATCH)
                else:
                    for start in range(0, len(texts), INDEX_BATCH):
                        await retriever.embedding.generate_embeddings(
                            texts[start : start + INDEX_BATCH], "", config, timeout=CALL_TIMEOUT
                        )
                rate = len(texts) / (time.perf_counter() - started)
                rates[target].append(rate)
                print(f"round {r + 1}/{rounds} {target:<12} {rate:7.1f} chunks/s", file=sys.stderr)
    return rates


def search_table(runs: dict[int, dict[str, Runs]]) -> str:
    rows: list[list[object]] = []
    for callers, by_target in runs.items():
        base = by_target["direct embed"].latencies
        for target, got in by_target.items():
            p50, p99 = pct(got.latencies, 0.5), pct(got.latencies, 0.99)
            rows.append(
                [
                    f"{callers} caller{'s' if callers > 1 else ''}",
                    target,
                    f"{statistics.median(got.rates):.1f}",
                    f"{p50:.1f}",
                    f"{p99:.1f}",
                    f"{p50 / pct(base, 0.5):.2f}",
                    f"{p99 / pct(base, 0.99):.2f}",
                ]
            )
    headers = ["load", "call", "queries/s", "p50 ms", "p99 ms", "p50 ÷ direct", "p99 ÷ direct"]
    return table(headers, rows)


def index_table(rates: dict[str, list[float]], passages: int) -> str:
    base = rates["direct embed"]
    rows = [
        [
            target,
            f"{statistics.median(got):.1f}",
            f"{statistics.median([a / b for a, b in zip(got, base, strict=True)]):.2f}",
        ]
        for target, got in rates.items()
    ]
    headers = [f"indexing {passages} passages, batches of {INDEX_BATCH}", "chunks/s", "÷ direct"]
    return table(headers, rows)


async def run(
    args: argparse.Namespace, ports: tuple[int, int], cached_port: int, scratch: Path
) -> None:
    plan = QUICK if args.quick else FULL
    passages, queries = load_set(args.data)
    texts = [q.query for q in queries[: plan.queries]]
    await wait_serving(cached_port, within=START_TIMEOUT)
    async with (
        retriever_in(scratch / "index", ports) as retriever,
        RerankingClient(config=client_config(cached_port), registry=None) as cached_reranking,
    ):
        await index_passages(retriever, passages)
        cached = copy.copy(retriever)
        cached.reranking = cached_reranking
        searches = await search_speed(calls(retriever, cached), texts, plan.search_rounds)
    indexing = await index_speed(
        ports, scratch / "indexing", passages[: plan.passages], plan.index_rounds
    )
    mode = "--quick" if args.quick else "full run"
    print(
        f"\nhybrid+rerank search over {len(passages)} passages vs embedding the query directly, "
        f"CPU ({mode}: {len(texts)} queries x {plan.search_rounds} rounds)\n"
    )
    print(search_table(searches))
    rounds = f"{plan.index_rounds} round{'s' if plan.index_rounds > 1 else ''}"
    print(f"\nIndexer vs embedding the same texts directly, CPU ({mode}: {rounds})\n")
    print(index_table(indexing, len(passages[: plan.passages])))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries, passages and rounds")
    parser.add_argument("--data", type=Path, default=DATA, help="the labelled set's folder")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-orchestrator-speed-") as scratch,
        model_services() as ports,
        model_service("reranking", cache=True) as cached_port,
    ):
        asyncio.run(run(args, ports, cached_port, Path(scratch)))


if __name__ == "__main__":
    main()
