"""What finding a service costs: a cached answer, each backend asked afresh, and balancing.

Rows, each the best of several rounds of sequential calls in one process:

* ``os.environ`` + urlsplit: what a caller does without discovery (the baseline);
* ``discover_service_async`` with a cached answer (the common case: every call within the TTL);
* ``Discovery.resolve`` asking a backend every time (the cache dropped before each call):
  the environment, a real etcd 3.4 (when the ``etcd`` binary is installed), and the
  local Consul stand-in (tests/support/consul_standin.py, over loopback HTTP);
* one HTTP call through ``EnhancedHTTPClient`` to one URL, and the same call to
  ``discovery:///...`` balanced over two instances of the same local server.

    .venv/bin/python bench/bench_discovery.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.support.consul_standin import ConsulStandIn  # noqa: E402
from tests.support.etcd_server import EtcdNotFound, EtcdServer, find_etcd  # noqa: E402
from tests.support.faulty_server import FaultyServer  # noqa: E402

from _common import table  # noqa: E402
from servicegrid.clients.enhanced import EnhancedHTTPClient  # noqa: E402
from servicegrid.discovery import (  # noqa: E402
    Discovery,
    EnvBackend,
    Registration,
    StaticBackend,
    discover_service_async,
)
from servicegrid.discovery.consul import ConsulBackend  # noqa: E402
from servicegrid.discovery.etcd import EtcdBackend  # noqa: E402
from servicegrid.settings import load_settings  # noqa: E402


async def best_us(fn: Callable[[], Awaitable[object]], calls: int, rounds: int) -> float:
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(rounds):
        start = loop.time()
        for _ in range(calls):
            await fn()
        samples.append((loop.time() - start) / calls * 1e6)
    return min(samples)


def uncached(discovery: Discovery, name: str) -> Callable[[], Awaitable[object]]:
    async def ask() -> object:
        discovery.invalidate()
        return await discovery.resolve(name)

    return ask


async def lookups(quick: bool, stack: ExitStack) -> list[list[str]]:
    calls, rounds = (200, 3) if quick else (2_000, 7)
    os.environ.setdefault("USER_SERVICE_URL", "http://users.internal:8001")

    async def environ() -> object:
        return urlsplit(os.environ["USER_SERVICE_URL"]).netloc

    baseline = await best_us(environ, calls * 10, rounds)
    rows = [["os.environ + urlsplit (baseline)", f"{baseline:.2f}", "1.0"]]

    def row(what: str, micros: float) -> None:
        rows.append([what, f"{micros:.2f}", f"{micros / baseline:.1f}"])

    env = Discovery([EnvBackend(load_settings())])
    cached = await best_us(
        lambda: discover_service_async("USER_SERVICE", discovery=env), calls * 10, rounds
    )
    row("discover_service_async, cached", cached)
    row(
        "resolve, env backend, uncached",
        await best_us(uncached(env, "USER_SERVICE"), calls, rounds),
    )

    try:
        etcd_binary = find_etcd()
    except EtcdNotFound:
        rows.append(["resolve, etcd, uncached", "etcd not installed", "-"])
    else:
        etcd = stack.enter_context(EtcdServer(binary=etcd_binary))
        backend = EtcdBackend("127.0.0.1", etcd.port)
        await backend.register(
            Registration("user-service", "10.0.0.1", 8001, "http", "user-service-1")
        )
        found = Discovery([backend])
        row(
            "resolve, etcd 3.4, uncached",
            await best_us(uncached(found, "USER_SERVICE"), calls // 4, rounds),
        )
        await backend.aclose()

    consul = stack.enter_context(ConsulStandIn())
    consul.add_entry("user-service", port=8001, address="10.0.0.1")
    consul_backend = ConsulBackend("127.0.0.1", consul.port)
    found = Discovery([consul_backend])
    row(
        "resolve, Consul stand-in (HTTP), uncached",
        await best_us(uncached(found, "USER_SERVICE"), calls // 4, rounds),
    )
    await consul_backend.aclose()
    return rows


async def balancing(quick: bool, stack: ExitStack) -> list[list[str]]:
    calls, rounds = (200, 3) if quick else (2_000, 5)
    one = stack.enter_context(FaultyServer())
    two = stack.enter_context(FaultyServer())
    direct = EnhancedHTTPClient("direct", one.url, registry=None)
    discovery = Discovery(
        [StaticBackend({"user-service": [one.url], "pair-service": [one.url, two.url]})]
    )
    single = EnhancedHTTPClient(
        "single", "discovery:///user-service", discovery=discovery, registry=None
    )
    pair = EnhancedHTTPClient(
        "pair", "discovery:///pair-service", discovery=discovery, registry=None
    )
    async with direct, single, pair:
        plain = await best_us(lambda: direct.get("/ping"), calls, rounds)
        alone = await best_us(lambda: single.get("/ping"), calls, rounds)
        spread = await best_us(lambda: pair.get("/ping"), calls, rounds)
    return [
        ["EnhancedHTTPClient, one URL (baseline)", f"{plain:.0f}", "1.00"],
        ["discovery:/// with that one instance", f"{alone:.0f}", f"{alone / plain:.2f}"],
        ["discovery:/// over 2 instances", f"{spread:.0f}", f"{spread / plain:.2f}"],
    ]


async def run(quick: bool) -> None:
    with ExitStack() as stack:
        print(table(["lookup", "µs per lookup", "× baseline"], await lookups(quick, stack)))
        print()
        print(table(["HTTP call", "µs per call", "× baseline"], await balancing(quick, stack)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    asyncio.run(run(parser.parse_args().quick))


if __name__ == "__main__":
    main()
