"""Two embedding services found through etcd; one is SIGKILLed under 32 concurrent callers.

Both processes register themselves in a real etcd (``ETCD_HOST``); the client
finds them with ``discovery:///embedding-service`` and balances over them. After
the kill every call still ends, by its deadline, with a result or a typed error;
the dead instance's breaker opens and from then on every call goes to the survivor.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from servicegrid.clients import EmbeddingClient, ServiceClientConfig
from servicegrid.discovery import Discovery
from servicegrid.discovery.balancer import BalancedTransport
from servicegrid.discovery.etcd import EtcdBackend
from servicegrid.errors import ServiceError
from servicegrid.resilience.events import BreakerTransitioned, Event
from tests.services.test_service_processes import wait_serving
from tests.support.etcd_server import EtcdServer
from tests.support.faulty_server import free_port
from tests.support.service_processes import serve

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

CALLERS = 32
CALL_TIMEOUT = 3.0  # seconds each attempt may take
ATTEMPTS = 2
BOUND = CALL_TIMEOUT * ATTEMPTS + 1.0  # no call may outlive this, retries included


def start_embedding(port: int, etcd: EtcdServer) -> subprocess.Popen[bytes]:
    return serve(
        "embedding",
        port,
        SERVICEGRID_FORWARD_WORKERS="1",
        ETCD_HOST="127.0.0.1",
        ETCD_PORT=str(etcd.port),
        SERVICEGRID_ADVERTISE_ADDRESS="127.0.0.1",
    )


async def registered(discovery: Discovery, count: int, *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        discovery.invalidate()
        try:
            answer = await discovery.resolve("embedding-service")
        except ServiceError:
            answer = None
        if answer is not None and len(answer.instances) == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} embedding instances never registered in etcd")


async def test_a_killed_instance_is_ejected_and_calls_move_to_the_survivor(
    etcd_server: EtcdServer,
) -> None:
    ports = [free_port(), free_port()]
    processes = [start_embedding(port, etcd_server) for port in ports]
    discovery = Discovery([EtcdBackend("127.0.0.1", etcd_server.port)], ttl=30.0)
    transitions: list[tuple[str, str, str]] = []

    def record(event: Event) -> None:
        if isinstance(event, BreakerTransitioned):
            transitions.append((event.name, event.old, event.new))

    config = ServiceClientConfig(
        "discovery:///embedding-service",
        timeout=CALL_TIMEOUT,
        retry_attempts=ATTEMPTS,
        retry_delay=0.05,
        max_retry_delay=0.2,
    )
    outcomes: list[tuple[float, str]] = []
    overruns: list[float] = []
    stop = asyncio.Event()

    async def caller(index: int, client: EmbeddingClient) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await client.generate_embeddings(texts=[f"caller {index} at {started}"])
                outcomes.append((started, "ok"))
            except ServiceError as error:
                outcomes.append((started, type(error).__name__))
            elapsed = time.monotonic() - started
            if elapsed > BOUND:
                overruns.append(elapsed)

    try:
        for port in ports:
            await wait_serving(port)
        await registered(discovery, 2)
        async with EmbeddingClient(
            config=config, discovery=discovery, hooks=[record], registry=None
        ) as client:
            balancer = client.grpc
            assert isinstance(balancer, BalancedTransport)
            workers = [asyncio.create_task(caller(i, client)) for i in range(CALLERS)]
            await wait_for(lambda: sum(1 for _, o in outcomes if o == "ok") >= 100)
            victim = processes[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.monotonic()
            dead = f"127.0.0.1:{ports[0]}"
            await wait_for(lambda: any(t[0].endswith(dead) and t[2] == "open" for t in transitions))
            calls_at_open = instance(balancer, dead)["calls"]
            opened_at = time.monotonic()
            # well inside the dead instance's 10 s ejection and its 10 s lease in etcd
            await wait_for(lambda: sum(1 for s, o in outcomes if s > opened_at and o == "ok") >= 30)
            dead_entry = instance(balancer, dead)
            survivor = instance(balancer, f"127.0.0.1:{ports[1]}")
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), timeout=BOUND + 5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        await discovery.aclose()

    assert not overruns, f"calls ran past their bound: {overruns[:5]}"
    assert dead_entry["ejected"]
    # after its breaker opened the dead instance got no more calls (no probe within 10 s)
    assert dead_entry["calls"] == calls_at_open
    assert survivor["state"] == "closed"
    after = [o for s, o in outcomes if s > opened_at]
    assert after
    assert all(o == "ok" for o in after), sorted(set(after))
    errors = {o for s, o in outcomes if s >= killed_at and o != "ok"}
    assert errors <= {"ServiceUnavailableError", "ConnectionLost", "DeadlineExceeded"}, errors


def instance(balancer: BalancedTransport, address: str) -> dict[str, object]:
    return next(entry for entry in balancer.instances() if entry["address"] == address)


async def wait_for(condition: object, *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not hold in time")
