"""The short runs of ``bench/bench_retrieval.py`` and ``bench/bench_orchestrator_speed.py``.

Each starts the embedding and reranking services as processes and prints its tables;
only that is asserted. No timings, and no quality: on the full set hybrid (RRF of BM25
and dense) scores below dense alone in nDCG@10, so no ordering of the modes is a goal
that holds yet (see docs/benchmarks.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str) -> str:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def rows(stdout: str) -> dict[str, list[str]]:
    """A Markdown table's rows by their first cell."""
    cells = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in stdout.splitlines()
    ]
    return {row[0]: row[1:] for row in cells if len(row) > 1}


def test_the_quality_bench_scores_every_mode() -> None:
    stdout = bench("bench_retrieval.py")
    table = rows(stdout)
    for mode in ("bm25", "dense", "hybrid", "hybrid+rerank"):
        assert 0.0 <= float(table[mode][1]) <= 1.0, stdout  # nDCG@10
    assert "rerank adds (hybrid+rerank − hybrid)" in table, stdout
    assert "same all-MiniLM-L6-v2 as the dense retriever" in stdout


def test_the_speed_bench_compares_search_and_indexing_with_direct_embedding() -> None:
    stdout = bench("bench_orchestrator_speed.py")
    table = rows(stdout)
    assert {"1 caller", "16 callers"} <= set(table), stdout
    assert "Indexer" in table, stdout
    assert "direct embed" in table, stdout
    assert "p50 ÷ direct" in stdout
    assert "chunks/s" in stdout
