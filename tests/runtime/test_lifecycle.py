"""Graceful shutdown: in process with a stop event, and as a real process sent a signal."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from servicegrid.proto import common_pb2, embedding_service_pb2_grpc
from servicegrid.runtime import RunningServer, serve
from tests.runtime.conftest import EMBEDDING, build, embed_request

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("serve_script.py")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_stop_drains_in_flight_calls_after_going_not_serving() -> None:
    s = await build()
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(s.running, grace=5.0, stop=stop))
    try:
        health = health_pb2_grpc.HealthStub(s.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True)
        # the first answer may come from before `ready` ran; SERVING follows then
        while (await asyncio.wait_for(watch.read(), 5)).status != SERVING:
            pass

        slow = asyncio.ensure_future(s.stub.GenerateEmbeddings(embed_request("slow"), timeout=10))
        await asyncio.wait_for(s.servicer.slow_started.wait(), 5)
        stop.set()

        statuses = []
        while NOT_SERVING not in statuses:
            statuses.append((await asyncio.wait_for(watch.read(), 5)).status)
        watch.cancel()  # an open Watch would otherwise hold the server for the whole grace

        reply = await asyncio.wait_for(slow, 5)
        assert len(reply.embeddings) == 1
        await asyncio.wait_for(serving, 10)
        assert not s.running.health.is_serving(EMBEDDING)
        assert not s.running.health.is_serving("")

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await s.stub.GenerateEmbeddings(embed_request("late"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ["late"] not in s.servicer.calls
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
        await s.channel.close()


async def test_ready_callback_decides_when_to_serve() -> None:
    s = await build()
    stop = asyncio.Event()
    readied: list[RunningServer] = []

    async def ready(running: RunningServer) -> None:
        readied.append(running)
        await running.health.set(EMBEDDING, True)  # "" stays NOT_SERVING on purpose

    serving = asyncio.create_task(serve(s.running, stop=stop, ready=ready))
    try:
        health = health_pb2_grpc.HealthStub(s.channel)
        check = health_pb2.HealthCheckRequest
        reply = await health.Check(check(service=EMBEDDING), wait_for_ready=True, timeout=5)
        assert readied == [s.running]
        assert reply.status == SERVING
        assert (await health.Check(check(service=""), timeout=5)).status == NOT_SERVING
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
        await s.channel.close()


async def test_cancelling_serve_still_shuts_down() -> None:
    s = await build()
    serving = asyncio.create_task(serve(s.running, grace=1.0))
    reply = await s.stub.GetHealth(common_pb2.HealthRequest(), wait_for_ready=True, timeout=5)
    assert reply.status == "healthy"
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not s.running.health.is_serving(EMBEDDING)
    with pytest.raises(grpc.aio.AioRpcError):
        await s.stub.GetHealth(common_pb2.HealthRequest(), timeout=5)
    await s.channel.close()


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return process.stdout.readline().strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_exits_zero_on_signal(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = read_line(process, 30)
        assert line.startswith("PORT "), line
        with grpc.insecure_channel(f"127.0.0.1:{line.split()[1]}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            assert check(health_pb2.HealthCheckRequest(service=EMBEDDING), timeout=5).status == (
                SERVING
            )
            stub = embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
            assert stub.GetHealth(common_pb2.HealthRequest(), timeout=5).status == "healthy"
        started = time.monotonic()
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert read_line(process, 5) == "STOPPED"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
