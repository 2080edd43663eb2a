"""DistributedLLMClient: what it costs per request, and where its requests go.

(a) Overhead. Chat completion POSTs sent one at a time to one stand-in LLM host
(``tests/support/llm_hosts.py``, as its own process), by:

- ``httpx.AsyncClient.post`` (the direct call a user would otherwise write);
- ``Http1Transport.asend`` (the transport the client sends through, with no
  client around it; the JSON body encoded per call as well), to show what the
  client's own layers add;
- ``DistributedLLMClient.post`` with one host, and with three hosts (the same
  server under three names) under POWER_OF_TWO_CHOICES.

The machine drifts, so each round runs every client twice in mirrored order
(A B C D D C B A); a client's figure is the median over rounds of its mean
microseconds per request, and each ratio is the median of per-round ratios.

(b) Balancing. Three hosts, one answering at once, one after SLOW_DELAY
seconds, one dead (nothing listens on its port): REQUESTS chat completions,
CONCURRENCY at a time, under ROUND_ROBIN and under POWER_OF_TWO_CHOICES,
each with a fresh client. The table counts the attempts each host got.

    .venv/bin/python bench/bench_llm_client.py [--quick]

``--quick`` runs a quarter of the rounds and of the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.support.threaded_server import free_port  # noqa: E402

from _common import table  # noqa: E402
from servicegrid.llm import DistributedLLMClient, LLMHost, LoadBalancingStrategy  # noqa: E402
from servicegrid.transports.base import Call  # noqa: E402
from servicegrid.transports.http1 import Http1Transport  # noqa: E402
from servicegrid.transports.httpx_compat import json_body  # noqa: E402

CHAT = "/v1/chat/completions"
PAYLOAD = {"model": "standin-llm", "messages": [{"role": "user", "content": "Hi"}]}
ROUNDS = 20
CALLS_PER_RUN = 200
REQUESTS = 2000
CONCURRENCY = 50
SLOW_DELAY = 0.05
HTTPX = "httpx.AsyncClient (direct)"

Post = Callable[[], Awaitable[int]]


@contextmanager
def stand_in(name: str, delay: float = 0.0) -> Iterator[str]:
    """A stand-in LLM host in its own process; yields its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    command = [sys.executable, "-m", "tests.support.llm_hosts", "--port", str(port)]
    proc = subprocess.Popen([*command, "--name", name, "--delay", str(delay)], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=0.5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"stand-in {name} did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait()


async def run_once(post: Post, calls: int) -> float:
    """Mean microseconds per request over ``calls`` requests, one at a time."""
    started = time.perf_counter()
    for _ in range(calls):
        assert await post() == 200
    return (time.perf_counter() - started) / calls * 1e6


async def overhead(url: str, rounds: int) -> dict[str, list[float]]:
    direct = httpx.AsyncClient(base_url=url, timeout=30.0)
    transport = Http1Transport(service="bench")
    headers = (("content-type", "application/json"),)
    one = DistributedLLMClient([LLMHost("host1", url)])
    three = DistributedLLMClient(
        [LLMHost(f"host{i}", url) for i in (1, 2, 3)],
        LoadBalancingStrategy.POWER_OF_TWO_CHOICES,
    )

    async def httpx_post() -> int:
        return (await direct.post(CHAT, json=PAYLOAD)).status_code

    async def transport_send() -> int:
        call = Call("POST", f"{url}{CHAT}", headers, json_body(PAYLOAD), name=f"POST {CHAT}")
        return (await transport.asend(call)).status

    async def one_host() -> int:
        return (await one.post(CHAT, json=PAYLOAD)).status_code

    async def three_hosts() -> int:
        return (await three.post(CHAT, json=PAYLOAD)).status_code

    clients: dict[str, Post] = {
        HTTPX: httpx_post,
        "Http1Transport.asend (the seam, no client)": transport_send,
        "DistributedLLMClient.post, 1 host": one_host,
        "DistributedLLMClient.post, 3 hosts, P2C": three_hosts,
    }
    names = list(clients)
    samples: dict[str, list[float]] = {name: [] for name in names}
    try:
        for post in clients.values():
            await run_once(post, 50)  # warm every pool
        for _ in range(rounds):
            runs: dict[str, list[float]] = {name: [] for name in names}
            for name in [*names, *reversed(names)]:
                runs[name].append(await run_once(clients[name], CALLS_PER_RUN))
            for name, pair in runs.items():
                samples[name].append(statistics.fmean(pair))
    finally:
        await direct.aclose()
        await transport.aclose()
        await one.stop()
        await three.stop()
    return samples


async def balance(
    urls: dict[str, str], strategy: LoadBalancingStrategy, total: int
) -> list[object]:
    hosts = [LLMHost(name, url) for name, url in urls.items()]
    async with DistributedLLMClient(hosts, strategy) as client:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                assert (await client.post(CHAT, json=PAYLOAD)).status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - started
        metrics = client.get_metrics()
    per_host = metrics["hosts"]
    return [
        strategy.name,
        *(per_host[name]["requests"] for name in urls),
        metrics["failovers"],
        metrics["total_errors"],
        f"{wall:.2f}",
        f"{total / wall:,.0f}",
    ]


def main(quick: bool = False) -> None:
    rounds = ROUNDS // 4 if quick else ROUNDS
    total = REQUESTS // 4 if quick else REQUESTS
    with stand_in("host1") as url:
        samples = asyncio.run(overhead(url, rounds))
    rows: list[list[object]] = []
    for name, values in samples.items():
        ratios = [ours / raw for ours, raw in zip(values, samples[HTTPX], strict=True)]
        rows.append([name, f"{statistics.median(values):.0f}", f"{statistics.median(ratios):.2f}"])
    print(
        table(
            ["one chat completion POST at a time", "µs per request (median)", "÷ httpx direct"],
            rows,
        )
    )
    print()

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with stand_in("fast") as fast, stand_in("slow", SLOW_DELAY) as slow:
        urls = {"fast": fast, "slow": slow, "dead": dead}
        results = [
            asyncio.run(balance(urls, strategy, total))
            for strategy in (
                LoadBalancingStrategy.ROUND_ROBIN,
                LoadBalancingStrategy.POWER_OF_TWO_CHOICES,
            )
        ]
    print(
        table(
            [
                f"{total} requests, {CONCURRENCY} at a time",
                "fast",
                f"slow (+{SLOW_DELAY * 1000:.0f} ms)",
                "dead",
                "failovers",
                "failed",
                "wall s",
                "req/s",
            ],
            results,
        )
    )
    print("(attempts each host got; the dead host's breaker opens after 5 refusals)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the rounds and requests")
    main(parser.parse_args().quick)
