"""Seed 001's claim, measured: when a service is down, how soon do callers stop waiting on it?

Two kinds of "down", each against ResilientServiceClient with its default
settings (3 attempts, 1 s / 2 s backoff, threshold 5) and against a naive
client (``requests`` with a 30 s timeout, three tries per call, as seed 001's
"before" column):

* refused: nothing listens on the port, so every attempt fails at once;
* black hole: the port accepts connections and never answers, so every
  attempt waits for its timeout. Timeouts are scaled down by SCALE to keep
  the run short; the table also gives the time with unscaled defaults,
  computed from the measured number of attempts and sleeps.

"Time to first fast failure" runs from the first call until a call is
refused by the open circuit without touching the network.

    .venv/bin/python bench/bench_dead_service.py
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.support.faulty_server import free_port  # noqa: E402

from _common import table  # noqa: E402
from servicegrid import ResilientServiceClient, ServiceUnavailable  # noqa: E402

SCALE = 0.1  # black-hole timeouts: 10 s → 1 s for us, 30 s → 3 s for the naive client
NAIVE_TIMEOUT = 30.0
NAIVE_TRIES = 3


def naive_call(url: str, timeout: float) -> float:
    """One call the naive way: up to three tries with a fixed timeout; seconds it took."""
    started = time.perf_counter()
    for _ in range(NAIVE_TRIES):
        try:
            requests.get(url, timeout=timeout)
            break
        except requests.RequestException:
            continue
    return time.perf_counter() - started


def until_fast_failure(client: ResilientServiceClient) -> tuple[float, int, float]:
    """(seconds to the first call refused by the open circuit, calls made, µs per refused call).

    The last figure is the mean over REFUSALS further calls while the circuit stays open.
    """
    started = time.perf_counter()
    calls = 0
    while True:
        calls += 1
        call_started = time.perf_counter()
        try:
            client.get("/query")
        except ServiceUnavailable:
            if client.circuit_breaker.total_rejected and calls > 1:
                elapsed = time.perf_counter() - call_started
                if elapsed < 0.01:  # refused without a network attempt
                    return time.perf_counter() - started, calls, _refusal_us(client)
        except requests.RequestException:
            pass


REFUSALS = 1_000


def _refusal_us(client: ResilientServiceClient) -> float:
    started = time.perf_counter()
    for _ in range(REFUSALS):
        with contextlib.suppress(ServiceUnavailable):
            client.get("/query")
    return (time.perf_counter() - started) / REFUSALS * 1e6


def main() -> list[list[object]]:
    logging.getLogger("servicegrid").setLevel(logging.CRITICAL)
    rows: list[list[object]] = []

    port = free_port()  # nothing listens here
    url = f"http://127.0.0.1:{port}"
    refused, calls, reject_us = until_fast_failure(
        ResilientServiceClient(url, service_name="refused", registry=None)
    )
    naive = naive_call(f"{url}/query", NAIVE_TIMEOUT)
    rows.append(
        [
            "refused (port closed)",
            f"{refused:.1f} s ({calls} calls)",
            f"{reject_us:.0f} µs",
            f"{naive * 1000:.1f} ms per call, never short-circuits",
        ]
    )

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)  # accepts into the backlog, never reads: every request times out
    hole_url = f"http://127.0.0.1:{hole.getsockname()[1]}"
    client = ResilientServiceClient(
        hole_url, service_name="black hole", timeout=10 * SCALE, registry=None
    )
    scaled, calls, reject_us = until_fast_failure(client)
    attempts = client.circuit_breaker.total_failures
    unscaled = scaled + attempts * (10 - 10 * SCALE)
    naive = naive_call(f"{hole_url}/query", NAIVE_TIMEOUT * SCALE)
    hole.close()
    rows.append(
        [
            f"black hole (timeouts x{SCALE:g})",
            f"{scaled:.1f} s ({calls} calls); {unscaled:.0f} s at 10 s timeout",
            f"{reject_us:.0f} µs",
            f"{naive:.1f} s per call; {naive / SCALE:.0f} s at 30 s timeout",
        ]
    )
    print(
        table(
            [
                "service down",
                "servicegrid: time to first fast failure",
                "then each call fails in (mean)",
                "naive client (30 s timeout x 3 tries)",
            ],
            rows,
        )
    )
    return rows


if __name__ == "__main__":
    main()
