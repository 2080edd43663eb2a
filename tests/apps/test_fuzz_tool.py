"""The short run of ``tools/fuzz_apps.py`` (issue 16, acceptance 3; ``make fuzz`` runs 5,000)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 300


def test_a_short_fuzz_of_the_three_services_finds_no_server_error() -> None:
    run = subprocess.run(
        [sys.executable, "tools/fuzz_apps.py", "--requests", str(REQUESTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4_000:] + run.stderr[-2_000:]
    assert run.stdout.splitlines()[-1] == "OK"
