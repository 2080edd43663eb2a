"""``servicegrid serve NAME`` as an OS process a test can SIGKILL: CPU, offline, output dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["serve"]

ROOT = Path(__file__).resolve().parents[2]


def serve(name: str, port: int, **env: str) -> subprocess.Popen[bytes]:
    """Start ``servicegrid serve name --port port``; ``env`` adds to this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "servicegrid.cli", "serve", name, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "SERVICEGRID_DEVICE": "cpu", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
