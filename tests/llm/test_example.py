"""examples/seed004_distributed_llm_client.py runs as a user would run it, against two stand-ins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.llm_hosts import LLMHostStandIns

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "seed004_distributed_llm_client.py"


def test_the_seed_004_distributed_llm_client_example() -> None:
    with LLMHostStandIns(2) as (first, second):
        env = {**os.environ, "LLM_HOSTS": f"{first.url},{second.url}/v1"}
        done = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "response: 200 Hello from host" in done.stdout
        assert "host1: healthy" in done.stdout
        assert "host2: healthy" in done.stdout
        assert first.served + second.served == 1
