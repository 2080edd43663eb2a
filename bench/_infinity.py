"""Infinity (``infinity-emb``) as a comparison server, in a virtual environment of its own.

Infinity pins sentence-transformers < 4, transformers < 5 and numpy < 2, so it
cannot share servicegrid's environment. The first run builds
``.servicegrid/bench-venvs/infinity`` (torch==2.13.0 first, so pip keeps the CPU
build, then ``infinity-emb[server,torch]``); later runs reuse it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx

from _common import logged_process

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".servicegrid" / "bench-venvs" / "infinity"
REQUIREMENTS = (["torch==2.13.0"], ["infinity-emb[server,torch]==0.0.78"])
SERVED_NAME = "minilm"
START_TIMEOUT = 300.0


def executable() -> Path:
    return VENV / "bin" / "infinity_emb"


def ensure_venv() -> Path:
    """The ``infinity_emb`` command, building its environment first when missing."""
    if executable().exists():
        return executable()
    print(f"building Infinity's environment in {VENV} (a few minutes, once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for packages in REQUIREMENTS:
        subprocess.run([*pip, *packages], check=True)
    return executable()


@contextmanager
def infinity_server(model_path: Path, port: int, *, batch_size: int = 32) -> Iterator[str]:
    """Serve ``model_path`` with Infinity on CPU; yields its base URL, stops it on the way out."""
    command = [
        str(ensure_venv()),
        "v2",
        "--model-id",
        str(model_path),
        "--served-model-name",
        SERVED_NAME,
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--batch-size",
        str(batch_size),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    env["DO_NOT_TRACK"] = "1"
    with logged_process(command, env, "Infinity server", prefix="bench") as server:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server)
        yield url


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + START_TIMEOUT
    while time.monotonic() < give_up:
        if server.poll() is not None:
            raise RuntimeError(f"Infinity exited with {server.returncode} before serving")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Infinity did not answer {url}/health within {START_TIMEOUT:.0f} s")


async def embed(client: aiohttp.ClientSession, texts: list[str]) -> None:
    """One OpenAI-style embeddings call to Infinity; its answer is parsed, as a caller would."""
    async with client.post("/embeddings", json={"model": SERVED_NAME, "input": texts}) as answer:
        answer.raise_for_status()
        await answer.json()


def client(url: str) -> aiohttp.ClientSession:
    """An aiohttp session to Infinity: a keep-alive connection per concurrent caller.

    Not httpx: under 64 concurrent callers httpx's connection pool costs more CPU
    in the benchmark's process than Infinity spends answering, so the figures
    measured the client, not Infinity (42 texts/s where aiohttp sees over 120).
    """
    # Idle connections are dropped after 2 s, before the servers' own 5 s keep-alive
    # timeout, so no request is ever sent on a connection the server is closing.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=2)
    return aiohttp.ClientSession(
        base_url=url, connector=connector, timeout=aiohttp.ClientTimeout(total=120.0)
    )


if __name__ == "__main__":
    print(ensure_venv())
