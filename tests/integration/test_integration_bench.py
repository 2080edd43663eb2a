"""The short run of ``bench/bench_integration.py``: it runs end to end and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_integration_benchmark_runs_short() -> None:
    done = subprocess.run(
        [sys.executable, "bench/bench_integration.py", "--executions", "12", "--samples", "3",
         "--setups", "sqlite"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| sqlite " in done.stdout
    assert "overhead / direct call" in done.stdout
