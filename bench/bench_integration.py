"""Durable executions: 3-step executions per second and the overhead each step adds.

The integration service runs as its own process (``servicegrid serve integration``) on SQLite
and on a throwaway PostgreSQL; the three actions are no-ops on a local HTTP server in a third
process. The baseline, measured in the same run, is the same three calls made directly from
here, one after the other (no durability, no validation).

- executions/s: 400 executions submitted by 16 concurrent callers, from the first submission to
  the last ``finished_at`` the service recorded.
- per-step overhead: one execution at a time; (service-side execution time − the direct
  3-call chain's time) / 3, medians.
- service CPU ms/execution: the integration process's CPU time (all threads) during the
  throughput run, per execution: steadier than wall time on a shared machine.
- ``postgresql x2``: two workers (two processes, each its own executor id and port) on one
  PostgreSQL database, on the same cores; the callers submit to them in turn, as a load balancer
  would, and the CPU is both processes'.

    .venv/bin/python bench/bench_integration.py [--executions 400] [--samples 60]
        [--setups sqlite postgresql postgresql-x2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402
from tests.support.integration_process import IntegrationProcess  # noqa: E402

from _common import table  # noqa: E402

NOOP = {"type": "object"}
STEPS = [
    {"id": "one", "service": "noop", "action": "a", "next": "two"},
    {"id": "two", "service": "noop", "action": "b", "next": "three"},
    {"id": "three", "service": "noop", "action": "c"},
]
CALLERS = 16


@contextmanager
def action_server() -> Iterator[str]:
    """The no-op actions on uvicorn in their own process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.action_services", "--port", str(port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/__calls", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
        return
    from tests.support.postgres import PostgresServer

    with PostgresServer() as server:
        yield server.create_database("bench").url


def _moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def _direct_chain(client: httpx.AsyncClient, actions_url: str) -> float:
    started = time.perf_counter()
    payload: Any = {"document_url": "https://docs.test/1.pdf"}
    for action in ("a", "b", "c"):
        response = await client.post(
            f"{actions_url}/noop/api/{action}", json=payload, headers={"Idempotency-Key": "x"}
        )
        payload = response.json()
    return time.perf_counter() - started


async def _wait(client: httpx.AsyncClient, api: str, execution_id: str) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (await client.get(f"{api}/executions/{execution_id}")).json()
        if body["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return body
        await asyncio.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    apis: list[str],
    actions_url: str,
    workflow_id: str,
    executions: int,
    pids: list[int],
    samples: int,
) -> dict[str, float]:
    api = apis[0]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        # latency: one at a time, service-side times; the direct chain alternates with it
        overheads, durations, chains = [], [], []
        for n in range(samples):
            chains.append(await _direct_chain(client, actions_url))
            started = await client.post(
                f"{api}/workflows/{workflow_id}/execute",
                json={"input_data": {"document_url": f"https://docs.test/{n}.pdf"}},
            )
            done = await _wait(client, api, started.json()["id"])
            assert done["status"] == "COMPLETED", done
            duration = _moment(done["finished_at"]) - _moment(done["created_at"])
            durations.append(duration)
        chain = statistics.median(chains)
        overheads = [(duration - chain) / 3 for duration in durations]

        # throughput: many at once
        queue = list(range(executions))
        ids: list[str] = []

        async def caller() -> None:
            while queue:
                n = queue.pop()
                response = await client.post(
                    f"{apis[n % len(apis)]}/workflows/{workflow_id}/execute",
                    json={"input_data": {"document_url": f"https://docs.test/{n}.pdf"}},
                )
                ids.append(response.json()["id"])

        first = time.time()
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        finished = []
        for execution_id in ids:
            done = await _wait(client, api, execution_id)
            assert done["status"] == "COMPLETED", done
            finished.append(_moment(done["finished_at"]))
        elapsed = max(finished) - first
        cpu_used = sum(cpu_seconds(pid) for pid in pids) - cpu_before

        # the baseline's throughput: the same chains, directly, as many callers
        chains_left = list(range(executions))

        async def direct_caller() -> None:
            while chains_left:
                chains_left.pop()
                await _direct_chain(client, actions_url)

        direct_started = time.perf_counter()
        await asyncio.gather(*(direct_caller() for _ in range(CALLERS)))
        direct_elapsed = time.perf_counter() - direct_started
    return {
        "executions_per_s": executions / elapsed,
        "direct_chains_per_s": executions / direct_elapsed,
        "execution_ms": statistics.median(durations) * 1000,
        "chain_ms": chain * 1000,
        "overhead_ms_per_step": statistics.median(overheads) * 1000,
        "cpu_ms_per_execution": cpu_used / executions * 1000,
    }


def run_one(setup: str, executions: int, samples: int) -> dict[str, float]:
    kind, _, copies = setup.partition("-x")
    workers = int(copies or 1)
    with (
        tempfile.TemporaryDirectory(prefix="sg-bench-") as folder,
        action_server() as actions_url,
        database(kind, Path(folder)) as database_url,
    ):
        services = [
            IntegrationProcess(
                database_url,
                Path(folder) / f"integration-{n}.log",
                env={"SERVICEGRID_INTEGRATION_EXECUTOR_ID": f"worker-{n}"} if workers > 1 else {},
            )
            for n in range(workers)
        ]
        try:
            for service in services:
                service.start()
            with httpx.Client(base_url=services[0].api, timeout=30) as client:
                client.post(
                    "/services",
                    json={
                        "name": "noop",
                        "endpoint": f"{actions_url}/noop/api",
                        "actions": [
                            {"name": name, "input_schema": NOOP, "output_schema": NOOP}
                            for name in ("a", "b", "c")
                        ],
                    },
                ).raise_for_status()
                workflow = client.post("/workflows", json={"name": "noop-3", "steps": STEPS})
                workflow.raise_for_status()
            pids = [service.process.pid for service in services if service.process is not None]
            return asyncio.run(
                measure(
                    [service.api for service in services],
                    actions_url,
                    workflow.json()["id"],
                    executions,
                    pids,
                    samples,
                )
            )
        finally:
            for service in services:
                service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=400)
    parser.add_argument(
        "--samples", type=int, default=60, help="one-at-a-time executions for the latencies"
    )
    parser.add_argument(
        "--setups",
        nargs="+",
        default=["sqlite", "postgresql", "postgresql-x2"],
        help="databases, and postgresql-x2 for two workers on one database",
    )
    args = parser.parse_args()
    rows = []
    for setup in args.setups:
        result = run_one(setup, args.executions, args.samples)
        rows.append(
            [
                setup.replace("-x2", " x2"),
                f"{result['executions_per_s']:.0f}",
                f"{result['direct_chains_per_s']:.0f}",
                f"{result['executions_per_s'] / result['direct_chains_per_s']:.2f}",
                f"{result['execution_ms']:.1f}",
                f"{result['chain_ms']:.1f}",
                f"{result['overhead_ms_per_step']:.2f}",
                f"{result['overhead_ms_per_step'] / (result['chain_ms'] / 3):.2f}",
                f"{result['cpu_ms_per_execution']:.1f}",
            ]
        )
    print(
        table(
            [
                "database (workers)",
                "executions/s",
                "direct 3-call chains/s",
                "ratio",
                "execution ms (p50)",
                "direct chain ms (p50)",
                "overhead ms/step",
                "overhead / direct call",
                "service CPU ms/execution",
            ],
            rows,
        )
    )
    print(
        "goals: executions/s >= 0.6 x the direct chains/s; "
        "overhead per step <= 2 x one direct call (direct chain ms / 3)"
    )


if __name__ == "__main__":
    main()
