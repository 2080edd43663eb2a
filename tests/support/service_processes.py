"""``servicegrid serve NAME`` as an OS process a test can SIGKILL: CPU, offline, output dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["serve", "wait_for_health"]

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


def wait_for_health(url: str, *, within: float = 60.0) -> None:
    """Return once ``GET url`` answers 200; RuntimeError after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {within:g} s")
