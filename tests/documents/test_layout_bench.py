"""The short version of ``make bench-document-layout``: one corpus PDF of each kind, scored.

Unlike the speed figures, the quality figures are not timings: on this subset our engine
must still reach the issue's goals, so a layout regression fails the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOALS = {  # metric row: the lowest acceptable figure for our engine
    "reading order, body text": 0.95,
    "table cell F1, ruled": 0.9,
    "table cell F1, unruled": 0.9,
    "header/footer precision": 0.95,
    "header/footer recall": 0.95,
}


def ours(stdout: str, metric: str) -> str:
    """Our engine's figure in the metric's row (the column after the goal)."""
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] == metric:
            return cells[2]
    raise AssertionError(f"no row {metric!r} in:\n{stdout}")


def test_the_layout_benchmark_runs_quickly_and_our_engine_meets_the_goals(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "bench/bench_document_layout.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for metric, lowest in GOALS.items():
        assert float(ours(done.stdout, metric)) >= lowest, done.stdout
    assert float(ours(done.stdout, "duplicated-word rate")) == 0.0, done.stdout
    ocr = ours(done.stdout, "OCR word accuracy, scanned")
    assert ocr == "n/a" or float(ocr) >= 0.95, done.stdout
