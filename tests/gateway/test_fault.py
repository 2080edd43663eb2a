"""Issue 14, acceptance 3: 64 callers through the gateway while the embedding service is
SIGKILLed and restarted.

Both the embedding service and the gateway run as processes of their own. Every request
carries a client-side deadline; each must end within it with 200, 429/503 with
``Retry-After``, or 504 (never a 500, never a hang), and 200s must come back after the restart.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.services.test_service_processes import wait_serving
from tests.support.faulty_server import free_port
from tests.support.service_processes import serve

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

CALLERS = 64
DEADLINE = 10.0  # seconds: each request's client-side deadline
ALLOWED_FAILURES = {429, 503, 504}
PACING = 0.05  # seconds between a caller's requests after a failure


def start_embedding(port: int) -> subprocess.Popen[bytes]:
    return serve("embedding", port)


def start_gateway(port: int, embedding_port: int, database: Path) -> subprocess.Popen[bytes]:
    env = {
        "EMBEDDING_SERVICE_URL": f"127.0.0.1:{embedding_port}",
        "RERANKING_SERVICE_URL": f"127.0.0.1:{free_port()}",  # nothing listens there
        "DOCLING_VLM_SERVICE_URL": f"127.0.0.1:{free_port()}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "EMBEDDING_SERVICE_TIMEOUT": "5",
        # short retry and breaker times, so the test sees the breaker close again within it
        "RETRY_BASE_DELAY": "0.05",
        "RETRY_MAX_DELAY": "0.2",
        "CIRCUIT_BREAKER_TIMEOUT": "1",
    }
    return serve("gateway", port, **env)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def wait_ready(client: httpx.AsyncClient, *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if (await client.get("/ready", timeout=1.0)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway was not ready within {within} s")


@dataclass
class Record:
    """What the callers saw: statuses by phase, and anything that broke the contract."""

    phase: str = "before"
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    overruns: list[float] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def add(self, status: int) -> None:
        self.statuses.setdefault(self.phase, Counter())[status] += 1

    def seen(self, phase: str, status: int) -> int:
        return self.statuses.get(phase, Counter())[status]

    def failures_in_outage(self) -> bool:
        outage = self.statuses.get("outage", Counter())
        return sum(outage.values()) - outage[200] >= CALLERS


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        yield running
    finally:
        for process in running.values():
            stop(process)


async def test_callers_through_the_gateway_survive_a_killed_embedding_service(
    tmp_path: Path, processes: dict[str, subprocess.Popen[bytes]]
) -> None:
    embedding_port, gateway_port = free_port(), free_port()
    processes["embedding"] = start_embedding(embedding_port)
    processes["gateway"] = start_gateway(gateway_port, embedding_port, tmp_path / "jobs.db")
    record = Record()
    running = asyncio.Event()
    running.set()

    async def call(client: httpx.AsyncClient, index: int) -> None:
        started = time.monotonic()
        try:
            response = await asyncio.wait_for(
                client.post("/v1/embeddings", json={"input": f"caller {index} at {started}"}),
                DEADLINE,
            )
        except TimeoutError:
            record.overruns.append(time.monotonic() - started)
            return
        except httpx.TransportError as error:  # the gateway process itself must stay up
            record.broken.append(f"{type(error).__name__}: {error}")
            return
        record.add(response.status_code)
        status = response.status_code
        if status == 200:
            return
        if status not in ALLOWED_FAILURES:
            record.broken.append(f"{status}: {response.text[:200]}")
        elif status in (429, 503) and "retry-after" not in response.headers:
            record.broken.append(f"{status} without Retry-After: {response.text[:200]}")
        await asyncio.sleep(PACING)

    async def caller(client: httpx.AsyncClient, index: int) -> None:
        while running.is_set():
            await call(client, index)

    async def until(condition: str, check: Callable[[], bool], within: float) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, f"{condition} within {within} s: {record}"
            await asyncio.sleep(0.05)

    limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway_port}", timeout=DEADLINE + 5, limits=limits
    ) as client:
        await wait_serving(embedding_port)
        await wait_ready(client)
        workers = [asyncio.create_task(caller(client, i)) for i in range(CALLERS)]
        try:
            await until("200s before the kill", lambda: record.seen("before", 200) >= 64, 30)
            record.phase = "outage"
            processes["embedding"].send_signal(signal.SIGKILL)
            processes["embedding"].wait(timeout=10)
            await until("failures during the outage", record.failures_in_outage, 30)
            processes["embedding"] = start_embedding(embedding_port)
            await wait_serving(embedding_port)
            record.phase = "after"
            await until("200s after the restart", lambda: record.seen("after", 200) >= 64, 40)
        finally:
            running.clear()
            await asyncio.wait_for(asyncio.gather(*workers), DEADLINE + 5)

    assert processes["gateway"].poll() is None, "the gateway process died"
    assert not record.overruns, f"requests ran past their {DEADLINE} s deadline: {record}"
    assert not record.broken, f"answers outside the contract: {record.broken[:5]}"
    outage = record.statuses["outage"]
    assert any(status in ALLOWED_FAILURES for status in outage), record.statuses
    assert record.seen("after", 200) > 0, record.statuses
    print(f"statuses by phase: {record.statuses}")
