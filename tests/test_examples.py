"""Every file in examples/ runs, as a user would run it, against a real local server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.support.faulty_server import FaultyServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run_example(name: str, server_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CHROMA_SERVER_URL": server_url,
        "FILESYSTEM_SERVER_URL": server_url,
        "MY_SERVICE_URL": server_url,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES} == {
        "seed000_gpu_client.py",
        "seed001_quick_start.py",
        "seed001_patterns.py",
        "seed001_status_endpoint.py",
        "seed004_enhanced_http_client.py",
    }


def test_quick_start_against_a_healthy_service(server: FaultyServer) -> None:
    done = run_example("seed001_quick_start.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "search: {'ok': True, 'path': '/query', 'method': 'POST'" in done.stdout
    assert "'state': 'closed'" in done.stdout
    assert "[Chroma Server] ✓ POST /query succeeded" in done.stderr


def test_quick_start_when_the_service_is_down(server: FaultyServer) -> None:
    server.set(mode="fail", status=503, retry_after=None)
    done = run_example("seed001_quick_start.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "search: ({'error': 'Service unavailable'}, 503)" in done.stdout
    assert "[Chroma Server] HTTP 503 on attempt 1/3, retrying in 1s..." in done.stderr
    assert "Search failed:" in done.stderr


def test_patterns(server: FaultyServer) -> None:
    done = run_example("seed001_patterns.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "fail closed: ({'charged': True}, 200)" in done.stdout
    assert "best effort: continued" in done.stdout
    assert "presets: ((3, 15.0), (2, 5.0), (3, 30.0, 90.0))" in done.stdout


@pytest.mark.parametrize("mode", ["ok", "fail"])
def test_status_endpoint(server: FaultyServer, mode: str) -> None:
    server.set(mode=mode)
    done = run_example("seed001_status_endpoint.py", server.url, "--check")
    assert done.returncode == 0, done.stderr
    assert "flask: {'chroma': {" in done.stdout
    assert "'service': 'Chroma Server'" in done.stdout
    assert "fastapi: {'Chroma Server': {" in done.stdout


def test_enhanced_http_client(server: FaultyServer) -> None:
    done = run_example("seed004_enhanced_http_client.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "response: 200 {'ok': True, 'path': '/api/endpoint'" in done.stdout
    assert "Error rate: 0.0" in done.stdout
    assert "Circuit breaker: closed" in done.stdout


async def run_example_async(name: str, **env: str) -> tuple[int, str, str]:
    """Run an example while this test's event loop keeps serving an in-process gRPC service."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / name),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return int(process.returncode or 0), stdout.decode(), stderr.decode()


async def test_gpu_client_against_the_gpu_service_on_the_nvml_standin(tmp_path: Path) -> None:
    from servicegrid.gpu import NvmlStandIn
    from servicegrid.services.gpu.app import build_gpu_service
    from servicegrid.settings import load_settings

    app = await build_gpu_service(
        load_settings(gpu_lease_db=str(tmp_path / "leases.sqlite3")),
        address="127.0.0.1:0",
        registry=CollectorRegistry(),
        library=NvmlStandIn(),
    )
    await app.running.server.start()
    try:
        code, stdout, stderr = await run_example_async(
            "seed000_gpu_client.py", GPU_SERVICE_URL=f"127.0.0.1:{app.running.port}"
        )
    finally:
        await app.running.server.stop(1.0)
        await app.aclose()
    assert code == 0, stderr
    assert "Available GPUs: 2" in stdout
    assert "GPU 0: 0/24576 MB" in stdout
    assert "Device 1: GPU 1 (NVML stand-in) (24576 MB)" in stdout
    assert "Allocation ID: " in stdout
    assert "Deallocation successful: True" in stdout
