"""Shared fixtures: a misbehaving real HTTP server, a PostgreSQL server, a clean state per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servicegrid.status import DEFAULT_REGISTRY
from tests.support.faulty_server import FaultyServer, free_port
from tests.support.postgres import PostgresNotFound, PostgresServer, find_bin_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    """A real uvicorn server on loopback that misbehaves when told to (``server.set(...)``)."""
    with FaultyServer() as running:
        yield running


class ServerProcess:
    """The faulty server as a separate OS process, so a test can kill it for real."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.faulty_server", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/__control", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server process did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def set(self, **changes: object) -> None:
        httpx.post(f"{self.url}/__control", json=changes, timeout=5)


@pytest.fixture
def server_process() -> Iterator[ServerProcess]:
    """The faulty server as a process: ``kill()`` sends SIGKILL, ``start()`` brings it back."""
    proc = ServerProcess()
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    yield
    for key in list(DEFAULT_REGISTRY.reporters()):
        DEFAULT_REGISTRY.unregister(key)


@pytest.fixture(autouse=True)
def _fresh_default_discovery() -> Iterator[None]:
    """Each test's default discovery is made from the environment it sets."""
    from servicegrid.discovery import set_default_discovery

    set_default_discovery(None)
    yield
    set_default_discovery(None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; skips when no binaries are installed."""
    try:
        bin_dir = find_bin_dir()
    except PostgresNotFound as exc:
        pytest.skip(str(exc))
    with PostgresServer(bin_dir=bin_dir) as running:
        yield running


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The asyncpg URL of a fresh, empty database, dropped after the test."""
    database = postgres_server.create_database()
    try:
        yield database.asyncpg_url
    finally:
        postgres_server.drop_database(database.name)
