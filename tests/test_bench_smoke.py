"""The short versions of ``make bench-discovery``, ``make bench-llm`` and ``make
bench-embedding`` (ONNX Runtime only, no Infinity): they run and print their tables (the
figures themselves are for docs/benchmarks.md, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("bench_discovery.py", ["discover_service_async, cached", "discovery:/// over 2"]),
        ("bench_llm_client.py", ["DistributedLLMClient.post, 1 host", "POWER_OF_TWO_CHOICES"]),
        ("bench_embedding.py", ["servicegrid onnx", "in-process encode (torch), batch 32"]),
    ],
)
def test_the_benchmark_runs_quickly(script: str, expected: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for text in expected:
        assert text in done.stdout
