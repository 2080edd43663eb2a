"""The short run of ``tools/fuzz_orchestrator.py`` (issue acceptance 4 runs 2,000 requests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 200


def test_a_short_fuzz_of_the_orchestrator_endpoints_finds_no_server_error() -> None:
    run = subprocess.run(
        [sys.executable, "tools/fuzz_orchestrator.py", "--requests", str(REQUESTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4_000:] + run.stderr[-2_000:]
    assert run.stdout.splitlines()[-1] == "OK"
