"""64 concurrent async GETs: AsyncHTTPClient against the raw clients a user would pick instead.

The raw clients: ``httpx.AsyncClient``, httpx over the ``httpx-aiohttp`` transport,
and an ``aiohttp.ClientSession``, each with the same pool limits as ours. Ours:
``AsyncHTTPClient`` with its defaults (retry + circuit breaker, servicegrid's
HTTP/1.1 transport under httpx's interface, an ``httpx.Response`` back).

All run against the same local server (uvicorn with httptools answering one
fixed JSON body, ``bench/_fast_server.py``) in its own process: the faster the
server, the more client overhead shows.

The machine's speed drifts by tens of percent within seconds, so each round
measures every client twice, in mirrored order (A B C D D C B A), which cancels
a steady drift; a client's rate in a round is the mean of its two runs. The
table gives each client's median rate over the rounds, and the ratio of ours to
each raw client is the median of the per-round ratios.

    .venv/bin/python bench/bench_http_throughput.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport as HttpxAiohttpTransport

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.support.faulty_server import free_port  # noqa: E402

from _common import table  # noqa: E402
from servicegrid import AsyncHTTPClient, ConnectionPoolConfig  # noqa: E402

CONCURRENCY = 64
REQUESTS_PER_RUN = 500
ROUNDS = 30
OURS = "AsyncHTTPClient (ours)"

Get = Callable[[str], Awaitable[Any]]


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


async def drive(get: Get, total: int) -> float:
    """Requests per second for ``total`` GETs issued by CONCURRENCY workers."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status = await get("/ping")
            assert status == 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return total / (time.perf_counter() - started)


async def measure(url: str) -> dict[str, list[float]]:
    """Each client's rate in each of ROUNDS mirrored rounds (requests per second)."""
    pool = ConnectionPoolConfig(max_connections=100, max_keepalive_connections=64)
    raw_httpx = httpx.AsyncClient(base_url=url, limits=pool.limits(), timeout=30.0)
    over_aiohttp = httpx.AsyncClient(
        base_url=url, transport=HttpxAiohttpTransport(limits=pool.limits()), timeout=30.0
    )
    session = aiohttp.ClientSession(
        base_url=url, connector=aiohttp.TCPConnector(limit=pool.max_connections)
    )
    ours = AsyncHTTPClient("bench", url, pool_config=pool, registry=None)
    await ours.start()

    async def httpx_get(path: str) -> int:
        return (await raw_httpx.get(path)).status_code

    async def over_aiohttp_get(path: str) -> int:
        return (await over_aiohttp.get(path)).status_code

    async def aiohttp_get(path: str) -> int:
        async with session.get(path) as response:
            await response.read()
            return response.status

    async def ours_get(path: str) -> int:
        return (await ours.get(path)).status_code

    clients: dict[str, Get] = {
        "raw httpx": httpx_get,
        "httpx over aiohttp (httpx-aiohttp)": over_aiohttp_get,
        "raw aiohttp": aiohttp_get,
        OURS: ours_get,
    }
    rates: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    try:
        for get in clients.values():
            await drive(get, 500)  # warm every pool
        for _ in range(ROUNDS):
            runs: dict[str, list[float]] = {name: [] for name in names}
            for name in [*names, *reversed(names)]:
                runs[name].append(await drive(clients[name], REQUESTS_PER_RUN))
            for name, pair in runs.items():
                rates[name].append(statistics.fmean(pair))
    finally:
        await raw_httpx.aclose()
        await over_aiohttp.aclose()
        await session.close()
        await ours.aclose()
    return rates


def main() -> list[list[object]]:
    port = free_port()
    server = start_server(port)
    try:
        rates = asyncio.run(measure(f"http://127.0.0.1:{port}"))
    finally:
        server.kill()
        server.wait()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    fastest_raw = max((name for name in rates if name != OURS), key=medians.__getitem__)
    rows: list[list[object]] = []
    for name, values in rates.items():
        per_round = [ours / raw for ours, raw in zip(rates[OURS], values, strict=True)]
        ours_vs = "" if name == OURS else f"{statistics.median(per_round):.3f}"
        rows.append([name, f"{medians[name]:,.0f}", ours_vs])
    print(
        table(
            [f"{CONCURRENCY} concurrent GETs", "req/s (median of rounds)", "ours / this client"],
            rows,
        )
    )
    print(f"fastest raw client: {fastest_raw}; goal: {OURS} >= 0.95 of it")
    return rows


if __name__ == "__main__":
    main()
