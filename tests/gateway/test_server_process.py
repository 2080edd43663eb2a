"""``servicegrid serve gateway`` as a process: registered while it runs, and on SIGTERM it
drains, leaves discovery and exits 0."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servicegrid.discovery import Discovery
from servicegrid.discovery.etcd import EtcdBackend
from servicegrid.errors import ServiceError, UnknownServiceError
from tests.support.etcd_server import EtcdNotFound, EtcdServer, find_etcd
from tests.support.faulty_server import free_port
from tests.support.service_processes import serve


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    try:
        binary = find_etcd()
    except EtcdNotFound as exc:
        pytest.skip(str(exc))
    with EtcdServer(binary=binary) as running:
        yield running


async def registered(discovery: Discovery) -> list[str]:
    discovery.invalidate()
    try:
        return (await discovery.resolve("gateway")).locators
    except UnknownServiceError:
        return []


async def test_sigterm_deregisters_and_exits_0(etcd: EtcdServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "ETCD_HOST": "127.0.0.1",
        "ETCD_PORT": str(etcd.port),
        "SERVICEGRID_ADVERTISE_ADDRESS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path}/gateway.db",
    }
    process = serve("gateway", port, **env)
    discovery = Discovery([EtcdBackend("127.0.0.1", etcd.port)])
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, "the gateway exited"
                assert time.monotonic() < deadline, "the gateway never became ready"
                await asyncio.sleep(0.1)
        while not await registered(discovery):
            assert time.monotonic() < deadline, "the gateway never registered"
            await asyncio.sleep(0.1)
        assert await registered(discovery) == [f"http://127.0.0.1:{port}"]

        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        assert code == 0
        try:
            assert await registered(discovery) == []  # gone at once, not after its lease
        except ServiceError as error:  # pragma: no cover - etcd trouble, not the gateway's
            pytest.fail(f"etcd could not be asked: {error}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        await discovery.aclose()
