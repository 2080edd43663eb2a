"""The short run of ``tools/fuzz_gateway.py`` (issue 14, acceptance 2; ``make fuzz`` runs 5,000)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 200


def test_a_short_fuzz_of_the_gateway_finds_no_server_error() -> None:
    run = subprocess.run(
        [sys.executable, "tools/fuzz_gateway.py", "--requests", str(REQUESTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4_000:] + run.stderr[-2_000:]
    assert "OK" in run.stdout.splitlines()[-1]
    assert "POST /v1/documents with a PDF, documents stopped: 503" in run.stdout
