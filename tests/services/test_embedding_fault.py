"""Fault test: 64 concurrent callers while the embedding service is SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from servicegrid.clients import EmbeddingClient, ServiceClientConfig
from servicegrid.errors import ServiceError
from servicegrid.resilience.events import BreakerTransitioned, Event
from tests.services.test_service_processes import wait_serving
from tests.support.faulty_server import free_port
from tests.support.service_processes import serve

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

CALLERS = 64
CALL_TIMEOUT = 3.0  # seconds: every call carries this deadline


def start_service(port: int) -> subprocess.Popen[bytes]:
    return serve("embedding", port)


async def test_callers_survive_a_killed_and_restarted_service() -> None:
    port = free_port()
    server = start_service(port)
    transitions: list[tuple[str, str]] = []

    def record(event: Event) -> None:
        if isinstance(event, BreakerTransitioned):
            transitions.append((event.old, event.new))

    config = ServiceClientConfig(
        service_url=f"127.0.0.1:{port}",
        timeout=CALL_TIMEOUT,
        retry_attempts=2,
        retry_delay=0.05,
        max_retry_delay=0.2,
        circuit_breaker_threshold=5,
        circuit_breaker_timeout=1.0,
    )
    outcomes: list[str] = []
    overruns: list[float] = []
    phase = {"stop": False}

    async def caller(index: int, client: EmbeddingClient) -> None:
        while not phase["stop"]:
            started = time.monotonic()
            try:
                await client.generate_embeddings(texts=[f"caller {index} at {started}"])
                outcomes.append("ok")
            except ServiceError as error:
                outcomes.append(type(error).__name__)
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            if elapsed > CALL_TIMEOUT * 2 + 1.0:  # retries included, never unbounded
                overruns.append(elapsed)

    try:
        await wait_serving(port)
        async with EmbeddingClient(config=config, hooks=[record], registry=None) as client:
            workers = [asyncio.create_task(caller(i, client)) for i in range(CALLERS)]
            await asyncio.sleep(2.0)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
            await asyncio.sleep(2.0)  # callers hit a dead port meanwhile
            server = start_service(port)
            await wait_serving(port)
            # The channel reconnects within its reconnect backoff (at most 10 s); until then
            # half-open trials fail fast and re-open the breaker. Bounded wait for it to close.
            for _ in range(300):
                if ("half_open", "closed") in transitions[-3:] and client.get_status()[
                    "state"
                ] == "closed":
                    break
                await asyncio.sleep(0.1)
            phase["stop"] = True
            await asyncio.wait_for(asyncio.gather(*workers), timeout=CALL_TIMEOUT * 3 + 5)
            final = await client.generate_embeddings(texts=["after the restart"])
            state = client.get_status()["state"]
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

    assert len(final.embeddings) == 1
    assert not overruns, f"calls ran past their bound: {overruns[:5]}"
    assert "ok" in outcomes
    failures = [o for o in outcomes if o != "ok"]
    assert failures, "the kill must have been seen by some callers"
    assert ("closed", "open") in transitions, "the breaker opens while the service is down"
    assert ("half_open", "closed") in transitions, "and closes again after the restart"
    assert state == "closed"
