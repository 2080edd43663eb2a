"""Retrieval quality on the labelled set: BM25, dense, hybrid and hybrid+rerank.

The set (bench/data/retrieval, see its README) holds passages and queries with graded
relevance (2: answers it, 1: related). The embedding and reranking services run as
processes on this machine's CPU (``servicegrid serve embedding|reranking``); every
passage, its title and text as one chunk, goes through ``Indexer`` into a fresh
local-mode ``HybridIndex`` in a temporary folder. Each query is then searched by
``HybridRetriever.search(..., limit=10, mode=m)`` over the document chunks, for each mode:

- bm25: Qdrant's sparse BM25 alone; dense: all-MiniLM-L6-v2 vectors alone;
- hybrid: both, fused by reciprocal rank (k=60), ``candidates`` hits from each;
- hybrid+rerank: the fused candidates reordered by the reranking service.

How to read it: recall@5 is the share of a query's relevant passages (grade 1 or 2) in
its first five hits; nDCG@10 gains 2 or 1 per hit by grade, discounted by log2(rank + 1),
over the best order the labels allow. Both are averaged over the queries. The packaged
reranker is the same all-MiniLM-L6-v2, served as a bi-encoder (cosine similarity), not a
cross-encoder, so "rerank" here reorders the fused candidates by the dense retriever's
own similarity. ``--rerank-model NAME`` picks a model configured on the reranking
service (``SERVICEGRID_RERANKING_MODELS``, passed through), such as a cross-encoder.

``--variants`` also scores settings that are the same for every query: the fusion (RRF
and relative score fusion, each with dense weights; each chosen on every other query and
scored on the rest, with the per-query better of BM25 and dense as the bound any fusion
has), the candidates count and BM25's k1, b and average length.

    .venv/bin/python bench/bench_retrieval.py [--quick] [--candidates N]
        [--rerank-model NAME] [--variants] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.services.test_service_processes import wait_serving  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402

from _common import logged_process, table  # noqa: E402
from servicegrid.clients import EmbeddingClient, RerankingClient, ServiceClientConfig  # noqa: E402
from servicegrid.retrieval.chunks import Chunk  # noqa: E402
from servicegrid.retrieval.fusion import Fusion  # noqa: E402
from servicegrid.retrieval.index import HybridIndex, Scope  # noqa: E402
from servicegrid.retrieval.indexing import Indexed, Indexer  # noqa: E402
from servicegrid.retrieval.retriever import HybridRetriever, Mode  # noqa: E402
from servicegrid.retrieval.sparse import Bm25Encoder  # noqa: E402
from servicegrid.retrieval.text import tokenise  # noqa: E402

DATA = ROOT / "bench" / "data" / "retrieval"
MODES: tuple[Mode, ...] = get_args(Mode)
KINDS = ("keyword", "paraphrase", "mixed")
QUICK_QUERIES = 15
LIMIT = 10
SCOPE = Scope(sources=frozenset({"document"}), user_id=None)
INDEX_BATCH = 32
"""Chunks per ``Indexer`` write (one embedding call each)."""
CALL_TIMEOUT = 120.0
START_TIMEOUT = 180.0
DENSE_WEIGHTS = (2.0, 4.0)
"""Weights of the dense ranking (BM25's 1.0) tried in each fusion."""
CANDIDATES = (10, 20, 50)
BM25_SETTINGS = ((1.2, 0.75), (0.9, 0.4), (1.5, 0.75), (2.0, 0.75), (1.2, 0.3))


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    topic: str
    title: str
    text: str

    def chunk(self) -> Chunk:
        """The passage as one document chunk: its title and text, cited by its id."""
        text = f"{self.title}\n\n{self.text}" if self.title else self.text
        return Chunk(id=self.id, source="document", ref=self.id, text=text, title=self.title)


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    query: str
    relevant: dict[str, int]
    kind: str


def load_set(folder: Path) -> tuple[list[Passage], list[Query]]:
    """The passages and queries of the labelled set in ``folder``."""
    passages = [
        Passage(p["id"], p.get("topic", ""), p.get("title", ""), p["text"])
        for p in _jsonl(folder / "passages.jsonl")
    ]
    queries = [
        Query(q["id"], q["query"], {k: int(v) for k, v in q["relevant"].items()}, q["kind"])
        for q in _jsonl(folder / "queries.jsonl")
    ]
    known = {p.id for p in passages}
    for query in queries:
        missing = set(query.relevant) - known
        if missing:
            raise ValueError(f"query {query.id} labels unknown passages {sorted(missing)}")
    return passages, queries


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- the measures ----------------------------------------------------------------------------


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 5) -> float:
    """The share of the relevant passages (any grade) among the first ``k`` hits."""
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """DCG@k / ideal DCG@k, with the grade as the gain and 1 / log2(rank + 1) as the discount."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    best = sorted(relevant.values(), reverse=True)[:k]
    ideal = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(best))
    return dcg / ideal


@dataclass
class Scores:
    """Per query: recall@5 and nDCG@10, with the query's kind."""

    recall: dict[str, float] = field(default_factory=dict)
    ndcg: dict[str, float] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)

    def add(self, query: Query, ranked: Sequence[str]) -> None:
        self.recall[query.id] = recall_at(ranked, query.relevant)
        self.ndcg[query.id] = ndcg_at(ranked, query.relevant)
        self.kind[query.id] = query.kind

    def mean_recall(self) -> float:
        return statistics.fmean(self.recall.values())

    def mean_ndcg(self, kind: str | None = None) -> float | None:
        values = [v for q, v in self.ndcg.items() if kind is None or self.kind[q] == kind]
        return statistics.fmean(values) if values else None


# ---- services, index and search --------------------------------------------------------------


@contextlib.contextmanager
def model_service(name: str, *, cache: bool = False) -> Iterator[int]:
    """``servicegrid serve NAME`` on the CPU as a process, its cache off unless ``cache``;
    yields its port.

    Its log goes to a temporary file, printed when anything fails.
    """
    port = free_port()
    env = {
        **os.environ,
        "SERVICEGRID_DEVICE": "cpu",
        "SERVICEGRID_LOG_LEVEL": "WARNING",
        # every text computed: a cache would answer the second of two compared runs
        "SERVICEGRID_EMBEDDING_CACHE_SIZE": "10000" if cache else "0",
    }
    argv = [sys.executable, "-m", "servicegrid.cli", "serve", name]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with logged_process(argv, env, f"{name} service", prefix="bench-retrieval"):
        yield port


@contextlib.contextmanager
def model_services() -> Iterator[tuple[int, int]]:
    """The embedding and reranking services' ports, both serving."""
    with model_service("embedding") as embedding, model_service("reranking") as reranking:

        async def serving() -> None:
            await asyncio.gather(
                wait_serving(embedding, within=START_TIMEOUT),
                wait_serving(reranking, within=START_TIMEOUT),
            )

        asyncio.run(serving())
        yield embedding, reranking


def client_config(port: int) -> ServiceClientConfig:
    return ServiceClientConfig(service_url=f"127.0.0.1:{port}", timeout=CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def retriever_in(
    folder: Path,
    ports: tuple[int, int],
    *,
    candidates: int = 20,
    rerank_model: str = "",
    encoder: Bm25Encoder | None = None,
) -> AsyncIterator[HybridRetriever]:
    """A retriever over a local-mode index in ``folder`` (fresh when the folder is)."""
    embedding_port, reranking_port = ports
    async with (
        EmbeddingClient(config=client_config(embedding_port), registry=None) as embedding,
        RerankingClient(config=client_config(reranking_port), registry=None) as reranking,
        HybridIndex(path=str(folder)) as index,
    ):
        yield HybridRetriever(
            index,
            embedding=embedding,
            reranking=reranking,
            encoder=encoder,
            candidates=candidates,
            rerank_model=rerank_model,
            timeout=CALL_TIMEOUT,
        )


async def index_passages(
    retriever: HybridRetriever, passages: Sequence[Passage], *, batch: int = INDEX_BATCH
) -> None:
    """Every passage through the Indexer's write (embedding, BM25 vector, upsert), in batches."""
    indexer = Indexer(retriever)
    for start in range(0, len(passages), batch):
        done = Indexed()
        await indexer.index_chunks([p.chunk() for p in passages[start : start + batch]], done)
        if not done.dense:
            raise RuntimeError(f"indexed without vectors: {done.uses}")


async def ranked(retriever: HybridRetriever, query: str, mode: Mode) -> list[str]:
    """The passage ids ``search`` finds, best first; raises when a service failed, since a
    degraded search would be scored as another mode."""
    found = await retriever.search(query, scope=SCOPE, limit=LIMIT, mode=mode)
    failed = [use for use in found.uses if use.status != "used"]
    if failed:
        raise RuntimeError(f"{mode} search for {query!r} degraded: {failed}")
    return [hit.chunk.ref for hit in found.hits]


async def score_modes(
    retriever: HybridRetriever, queries: Sequence[Query], modes: Sequence[Mode] = MODES
) -> dict[str, Scores]:
    scores: dict[str, Scores] = {mode: Scores() for mode in modes}
    for query in queries:
        for mode in modes:
            scores[mode].add(query, await ranked(retriever, query.query, mode))
    return scores


# ---- variants --------------------------------------------------------------------------------


FUSIONS: dict[str, Fusion] = {
    "RRF k=60 (the default)": Fusion(),
    "RRF k=10": Fusion(k=10),
    **{f"RRF k=60, dense weight {w}": Fusion(dense_weight=w) for w in DENSE_WEIGHTS},
    **{f"relative, dense weight {w}": Fusion("relative", dense_weight=w) for w in DENSE_WEIGHTS},
}


def halves(queries: Sequence[Query]) -> tuple[list[Query], list[Query]]:
    """Every other query to choose a fusion on, the rest held out to score the choice."""
    return list(queries[0::2]), list(queries[1::2])


async def fusion_variants(
    retriever: HybridRetriever, queries: Sequence[Query]
) -> list[list[object]]:
    """Each fusion of the two rankings ``search`` fuses, scored on both halves of the set.

    Rows: variant, nDCG@10 on the choosing half, on the held-out half, recall@5 held out;
    then the bound any fusion of the two has: the better of BM25 and dense for each query,
    picked knowing the labels.
    """
    choose, held_out = halves(queries)
    runs: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for query in queries:
        runs[query.id] = {}
        for mode in ("bm25", "dense"):
            found = await retriever.search(
                query.query, scope=SCOPE, limit=retriever.candidates, mode=mode
            )
            runs[query.id][mode] = [(hit.chunk.ref, hit.score) for hit in found.hits]

    def scores(rank: Callable[[Query], list[str]], part: Sequence[Query]) -> Scores:
        got = Scores()
        for query in part:
            got.add(query, rank(query)[:LIMIT])
        return got

    def alone(mode: str) -> Callable[[Query], list[str]]:
        return lambda query: [doc for doc, _ in runs[query.id][mode]]

    def fused(fusion: Fusion) -> Callable[[Query], list[str]]:
        def rank(query: Query) -> list[str]:
            found = runs[query.id]
            return [doc for doc, _ in fusion.fuse(found["bm25"], found["dense"])]

        return rank

    ranks = {mode: alone(mode) for mode in ("bm25", "dense")}
    ranks |= {name: fused(fusion) for name, fusion in FUSIONS.items()}

    def best_of_two(query: Query) -> list[str]:
        bm25, dense = ranks["bm25"](query), ranks["dense"](query)
        better = ndcg_at(bm25, query.relevant) > ndcg_at(dense, query.relevant)
        return bm25 if better else dense

    ranks["the better of bm25 and dense per query (a bound)"] = best_of_two
    rows: list[list[object]] = []
    for name, rank in ranks.items():
        held = scores(rank, held_out)
        chosen = scores(rank, choose).mean_ndcg()
        rows.append([name, _fmt(chosen), _fmt(held.mean_ndcg()), _fmt(held.mean_recall())])
    return rows


async def variants(
    ports: tuple[int, int],
    folder: Path,
    passages: Sequence[Passage],
    queries: Sequence[Query],
    *,
    rerank_model: str,
) -> tuple[list[list[object]], list[list[object]]]:
    """The fusion rows (see :func:`fusion_variants`), and rows of hybrid's figures (and
    BM25's where it changes) under the other settings."""
    rows: list[list[object]] = []

    def row(name: str, scores: dict[str, Scores]) -> list[object]:
        ndcg = [_fmt(scores[m].mean_ndcg()) if m in scores else "" for m in MODES]
        return [name, *ndcg, _fmt(scores["hybrid"].mean_recall())]

    async with retriever_in(folder / "default", ports, rerank_model=rerank_model) as retriever:
        await index_passages(retriever, passages)
        fusion_rows = await fusion_variants(retriever, queries)
        for n in CANDIDATES:
            retriever.candidates = n
            rows.append(
                row(
                    f"candidates={n}",
                    await score_modes(retriever, queries, ("hybrid", "hybrid+rerank")),
                )
            )
    words = statistics.fmean(len(tokenise(p.chunk().text)) for p in passages)
    encoders = [Bm25Encoder(k1=k1, b=b) for k1, b in BM25_SETTINGS]
    encoders.append(Bm25Encoder(average_length=round(words, 1)))
    for number, encoder in enumerate(encoders):
        async with retriever_in(
            folder / f"bm25-{number}", ports, rerank_model=rerank_model, encoder=encoder
        ) as retriever:
            await index_passages(retriever, passages)
            by_mode = await score_modes(retriever, queries, ("bm25", "hybrid"))
        name = f"BM25 k1={encoder.k1} b={encoder.b} average_length={encoder.average_length}"
        rows.append(row(name, by_mode))
    return fusion_rows, rows


# ---- the report ------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _delta(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or base is None else f"{value - base:+.3f}"


def quality_table(scores: dict[str, Scores], queries: Sequence[Query]) -> str:
    counts = {kind: sum(q.kind == kind for q in queries) for kind in KINDS}
    headers = ["mode", "recall@5", "nDCG@10", *(f"nDCG@10 {k} ({counts[k]})" for k in KINDS)]
    rows: list[list[object]] = []
    for mode, got in scores.items():
        per_kind = [_fmt(got.mean_ndcg(kind)) for kind in KINDS]
        rows.append([mode, _fmt(got.mean_recall()), _fmt(got.mean_ndcg()), *per_kind])
    reranked, fused = scores["hybrid+rerank"], scores["hybrid"]
    rows.append(
        [
            "rerank adds (hybrid+rerank − hybrid)",
            _delta(reranked.mean_recall(), fused.mean_recall()),
            _delta(reranked.mean_ndcg(), fused.mean_ndcg()),
            *(_delta(reranked.mean_ndcg(k), fused.mean_ndcg(k)) for k in KINDS),
        ]
    )
    return table(headers, rows)


async def run(args: argparse.Namespace, ports: tuple[int, int], scratch: Path) -> None:
    passages, queries = load_set(args.data)
    if args.quick:
        queries = queries[:QUICK_QUERIES]
    started = time.perf_counter()
    async with retriever_in(
        scratch / "index", ports, candidates=args.candidates, rerank_model=args.rerank_model
    ) as retriever:
        await index_passages(retriever, passages)
        scores = await score_modes(retriever, queries)
    reranker = args.rerank_model or "the packaged all-MiniLM-L6-v2 bi-encoder"
    print(
        f"\n{len(passages)} passages, {len(queries)} queries "
        f"({'--quick' if args.quick else 'full run'}), CPU; dense: all-MiniLM-L6-v2; "
        f"rerank: {reranker}; candidates {args.candidates}, RRF k=60. recall@5 counts "
        "grades 1 and 2 as relevant; nDCG@10 gains 2 or 1 by grade\n"
    )
    print(quality_table(scores, queries))
    if not args.rerank_model:
        print(
            "\nThe packaged reranker is the same all-MiniLM-L6-v2 as the dense retriever, "
            "served as a bi-encoder (cosine similarity), not a cross-encoder."
        )
    print(
        f"\n(indexing and {len(MODES) * len(queries)} searches: "
        f"{time.perf_counter() - started:.0f} s)"
    )
    if args.variants:
        fusion_rows, rows = await variants(
            ports, scratch / "variants", passages, queries, rerank_model=args.rerank_model
        )
        choose, held_out = halves(queries)
        print(
            f"\nFusions, each chosen on one half of the queries ({len(choose)}: every other "
            f"one from the first) and scored on the other ({len(held_out)}), "
            "candidates 20\n"
        )
        fusion_headers = ["fusion", "nDCG@10 choosing half", "nDCG@10 held out"]
        print(table([*fusion_headers, "recall@5 held out"], fusion_rows))
        headers = ["variant (nDCG@10)", *MODES, "hybrid recall@5"]
        print("\nSettings the same for every query; the product defaults are RRF k=60,")
        print("candidates=20, BM25 k1=1.2 b=0.75 average_length=60.0\n")
        print(table(headers, rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_QUERIES} queries")
    parser.add_argument(
        "--candidates", type=int, default=20, help="hits each retriever brings (default 20)"
    )
    parser.add_argument(
        "--rerank-model", default="", help="a model configured on the reranking service"
    )
    parser.add_argument("--variants", action="store_true", help="also score other settings")
    parser.add_argument("--data", type=Path, default=DATA, help="the labelled set's folder")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-retrieval-") as scratch,
        model_services() as ports,
    ):
        asyncio.run(run(args, ports, Path(scratch)))


if __name__ == "__main__":
    main()
