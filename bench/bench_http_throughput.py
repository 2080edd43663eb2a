"""64 concurrent async GETs: AsyncHTTPClient (retry + breaker, pooled) vs a raw httpx.AsyncClient.

Both use the same pool limits against the same local server (uvicorn with
httptools answering one fixed JSON body, ``bench/_fast_server.py``), which
runs in its own process: the faster the server, the more client overhead shows.
Rounds alternate between the two clients so drift on a shared machine hits
both alike; the ratio is of the medians.

    .venv/bin/python bench/bench_http_throughput.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.support.faulty_server import free_port  # noqa: E402

from _common import table  # noqa: E402
from servicegrid import AsyncHTTPClient, ConnectionPoolConfig  # noqa: E402

CONCURRENCY = 64
REQUESTS_PER_ROUND = 3_000
ROUNDS = 7


def start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parent / "_fast_server.py"), str(port)],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/ping", timeout=0.5)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("benchmark server did not start")


async def drive(get: object, total: int) -> float:
    """Requests per second for ``total`` GETs issued by CONCURRENCY workers."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await get("/ping")  # type: ignore[operator]
            assert response.status_code == 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return total / (time.perf_counter() - started)


async def measure(url: str) -> tuple[float, float]:
    pool = ConnectionPoolConfig(max_connections=100, max_keepalive_connections=64)
    raw = httpx.AsyncClient(base_url=url, limits=pool.limits(), timeout=30.0)
    ours = AsyncHTTPClient("bench", url, pool_config=pool, registry=None)
    await ours.start()
    raw_rps: list[float] = []
    our_rps: list[float] = []
    try:
        await drive(raw.get, 500)  # warm both pools
        await drive(ours.get, 500)
        for _ in range(ROUNDS):
            raw_rps.append(await drive(raw.get, REQUESTS_PER_ROUND))
            our_rps.append(await drive(ours.get, REQUESTS_PER_ROUND))
    finally:
        await raw.aclose()
        await ours.aclose()
    return statistics.median(raw_rps), statistics.median(our_rps)


def main() -> list[list[object]]:
    port = free_port()
    server = start_server(port)
    try:
        raw, ours = asyncio.run(measure(f"http://127.0.0.1:{port}"))
    finally:
        server.kill()
        server.wait()
    rows: list[list[object]] = [
        [f"{CONCURRENCY} concurrent GETs", f"{raw:,.0f}", f"{ours:,.0f}", f"{ours / raw:.3f}"]
    ]
    print(table(["load", "raw httpx req/s", "AsyncHTTPClient req/s", "ratio (goal >= 0.95)"], rows))
    return rows


if __name__ == "__main__":
    main()
