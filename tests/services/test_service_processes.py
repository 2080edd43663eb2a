"""The model services as real processes: fail fast without a GPU, drain and exit 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from tests.support.faulty_server import free_port

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

ROOT = Path(__file__).resolve().parents[2]


def servicegrid(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "servicegrid.cli", *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def wait_serving(port: int, *, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing SERVING on port {port} within {within} s")


def test_a_gpu_service_without_a_gpu_fails_fast_and_says_why() -> None:
    process = servicegrid(
        "serve", "embedding", "--port", str(free_port()), SERVICEGRID_DEVICE="cuda"
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "no CUDA GPU is visible" in stderr
    assert "SERVICEGRID_DEVICE=cpu" in stderr


def test_the_gpu_service_without_a_gpu_fails_fast_and_says_why(tmp_path: Path) -> None:
    process = servicegrid(
        "serve",
        "gpu",
        "--port",
        str(free_port()),
        SERVICEGRID_GPU_LEASE_DB=str(tmp_path / "leases.sqlite3"),
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "the GPU service needs" in stderr


async def test_the_gpu_service_on_the_nvml_standin_serves_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    process = servicegrid(
        "serve",
        "gpu",
        "--port",
        str(port),
        SERVICEGRID_NVML="standin",
        SERVICEGRID_GPU_LEASE_DB=str(tmp_path / "leases.sqlite3"),
    )
    try:
        await wait_serving(port)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "NVML stand-in" in stderr


@pytest.mark.parametrize("name", ["embedding", "reranking"])
async def test_sigterm_drains_and_exits_zero(name: str) -> None:
    port = free_port()
    process = servicegrid("serve", name, "--port", str(port), SERVICEGRID_DEVICE="cpu")
    try:
        await wait_serving(port)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "running on CPU" in stderr


def test_up_once_starts_every_local_service_and_reports_them_healthy(tmp_path: Path) -> None:
    ports = {
        "GPU_SERVICE_URL": free_port(),
        "EMBEDDING_SERVICE_URL": free_port(),
        "RERANKING_SERVICE_URL": free_port(),
        "DOCLING_VLM_SERVICE_URL": free_port(),
    }
    process = servicegrid(
        "up",
        "--once",
        SERVICEGRID_DEVICE="cpu",
        SERVICEGRID_NVML="standin",
        SERVICEGRID_GPU_LEASE_DB=str(tmp_path / "leases.sqlite3"),
        INTEGRATION_SERVICE_URL=f"http://127.0.0.1:{free_port()}/api",
        DATABASE_URL=f"sqlite:///{tmp_path}/integration.db",
        **{name: f"localhost:{port}" for name, port in ports.items()},
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "healthy" in rows["embedding"]
    assert "unhealthy" not in rows["embedding"]
    assert "healthy" in rows["reranking"]
    assert "unhealthy" not in rows["reranking"]
    for name in ("gpu", "documents", "integration"):
        assert "healthy" in rows[name]
        assert "unhealthy" not in rows[name]
