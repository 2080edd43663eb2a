"""The GPU management service in-process on loopback, over the NVML stand-in, via GPUClient.

The stand-in replaces only NVML (same functions, fake devices); the servicer,
the lease store (a real SQLite file), the gRPC runtime and the client are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from servicegrid.clients import GPUClient, ServiceClientConfig
from servicegrid.errors import (
    PermissionDenied,
    ResourceExhausted,
    ResourceNotFoundError,
    ValidationError,
)
from servicegrid.gpu import NvmlStandIn, StandInDevice
from servicegrid.proto import gpu_service_pb2, gpu_service_pb2_grpc
from servicegrid.runtime import DeviceUnavailableError
from servicegrid.services.gpu.app import GpuApp, build_gpu_service
from servicegrid.settings import load_settings

_pb = gpu_service_pb2
DEVICES = [StandInDevice("A100-SXM4-80GB", 81_920, "8.0"), StandInDevice("L4", 23_034, "8.9")]

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def start(db: Path, **settings: Any) -> GpuApp:
    app = await build_gpu_service(
        load_settings(gpu_lease_db=str(db), **settings),
        address="127.0.0.1:0",
        registry=CollectorRegistry(),
        library=NvmlStandIn(DEVICES),
    )
    await app.running.server.start()
    await app.running.health.set_all(True)
    return app


async def stop(app: GpuApp) -> None:
    await app.running.server.stop(1.0)
    await app.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def app(tmp_path: Path) -> AsyncIterator[GpuApp]:
    started = await start(tmp_path / "leases.sqlite3", gpu_tenants=["user123", "acme", "globex"])
    yield started
    await stop(started)


def client_for(app: GpuApp, **config: Any) -> GPUClient:
    return GPUClient(
        config=ServiceClientConfig(service_url=f"127.0.0.1:{app.running.port}", **config),
        registry=None,
    )


async def test_seed_usage(app: GpuApp) -> None:
    async with client_for(app) as gpu_client:
        status = await gpu_client.get_status()
        assert status.available_gpus == 2
        assert "stand-in" in status.status
        assert [(g.device_id, g.memory_total_mb) for g in status.gpus] == [(0, 81_920), (1, 23_034)]
        devices = await gpu_client.list_devices()
        assert [d.compute_capability for d in devices.devices] == ["8.0", "8.9"]
        assert all(d.name.endswith("(NVML stand-in)") and d.available for d in devices.devices)

        allocation = await gpu_client.allocate_gpu(
            device_id=0, memory_requested_mb=4096, tenant_id="user123"
        )
        assert allocation.allocation_id
        assert (allocation.device_id, allocation.memory_allocated_mb) == (0, 4096)
        assert allocation.expires_at - allocation.allocated_at == 3600
        success = await gpu_client.deallocate_gpu(allocation.allocation_id, "user123")
        assert success is True
        assert await gpu_client.deallocate_gpu(allocation.allocation_id, "user123") is False


async def test_the_tenant_can_come_from_the_client_config(app: GpuApp) -> None:
    async with client_for(app, tenant_id="acme") as acme:
        allocation = await acme.allocate_gpu(device_id=1, memory_requested_mb=1_000)
        assert allocation.tenant_id == "acme"
        renewed = await acme.renew_allocation(allocation.allocation_id, lease_seconds=120)
        assert renewed.expires_at >= allocation.allocated_at + 120
        async with client_for(app, tenant_id="globex") as globex:
            with pytest.raises(PermissionDenied):
                await globex.deallocate_gpu(allocation.allocation_id)
        assert await acme.deallocate_gpu(allocation.allocation_id)
        with pytest.raises(ResourceNotFoundError):
            await acme.renew_allocation(allocation.allocation_id)


async def test_leases_fill_a_device_and_a_full_device_is_resource_exhausted(app: GpuApp) -> None:
    async with client_for(app, tenant_id="acme", retry_attempts=1) as client:
        whole = await client.allocate_gpu(device_id=1, memory_requested_mb=23_034)
        devices = await client.list_devices()
        assert [d.available for d in devices.devices] == [True, False]
        assert (await client.get_status()).available_gpus == 1
        with pytest.raises(ResourceExhausted):
            await client.allocate_gpu(device_id=1, memory_requested_mb=1)
        assert await client.deallocate_gpu(whole.allocation_id)
        assert (await client.list_devices()).devices[1].available


async def test_64_concurrent_allocations_never_over_commit(app: GpuApp) -> None:
    async with client_for(app, tenant_id="globex", retry_attempts=1) as client:
        outcomes = await asyncio.gather(
            *(client.allocate_gpu(device_id=1, memory_requested_mb=1_000) for _ in range(64)),
            return_exceptions=True,
        )
        granted = [o for o in outcomes if isinstance(o, _pb.GPUAllocation)]
        assert len(granted) == 23  # 23 x 1000 MiB fit in 23,034
        assert all(isinstance(o, (_pb.GPUAllocation, ResourceExhausted)) for o in outcomes)
    # the refusals opened that client's breaker; a fresh client cleans up
    async with client_for(app, tenant_id="globex") as cleaner:
        for allocation in granted:
            assert await cleaner.deallocate_gpu(allocation.allocation_id)


async def test_a_restart_keeps_the_leases(tmp_path: Path) -> None:
    db = tmp_path / "leases.sqlite3"
    first = await start(db)
    async with client_for(first, tenant_id="acme") as client:
        kept = await client.allocate_gpu(device_id=0, memory_requested_mb=80_000)
    await stop(first)
    second = await start(db)
    try:
        async with client_for(second, tenant_id="acme", retry_attempts=1) as client:
            with pytest.raises(ResourceExhausted):
                await client.allocate_gpu(device_id=0, memory_requested_mb=2_000)
            assert await client.deallocate_gpu(kept.allocation_id)
    finally:
        await stop(second)


BAD_ALLOCATIONS = [
    (_pb.AllocateGPURequest(device_id=7, memory_requested_mb=1, tenant_id="acme"), "device_id"),
    (_pb.AllocateGPURequest(device_id=-1, memory_requested_mb=1, tenant_id="acme"), "device_id"),
    (
        _pb.AllocateGPURequest(device_id=0, memory_requested_mb=0, tenant_id="acme"),
        "memory_requested_mb",
    ),
    (
        _pb.AllocateGPURequest(device_id=0, memory_requested_mb=-5, tenant_id="acme"),
        "memory_requested_mb",
    ),
    (
        _pb.AllocateGPURequest(device_id=1, memory_requested_mb=23_035, tenant_id="acme"),
        "memory_requested_mb",
    ),
    (_pb.AllocateGPURequest(device_id=0, memory_requested_mb=1), "tenant_id"),
    (
        _pb.AllocateGPURequest(
            device_id=0, memory_requested_mb=1, tenant_id="acme", lease_seconds=0
        ),
        "lease_seconds",
    ),
    (
        _pb.AllocateGPURequest(
            device_id=0, memory_requested_mb=1, tenant_id="acme", lease_seconds=10**9
        ),
        "lease_seconds",
    ),
]


@pytest.mark.parametrize(("request_", "field"), BAD_ALLOCATIONS)
async def test_bad_allocations_are_invalid_argument_naming_the_field(
    app: GpuApp, request_: _pb.AllocateGPURequest, field: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        stub = gpu_service_pb2_grpc.GPUServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.AllocateGPU(request_, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (failure.value.details() or "").startswith(f"{field}:")
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.DeallocateGPU(_pb.DeallocateGPURequest(tenant_id="acme"), timeout=10)
        assert (empty.value.details() or "").startswith("allocation_id:")
        status = await stub.GetStatus(_pb.GPUStatusRequest(), timeout=10)
    assert status.available_gpus == 2  # nothing was leased, the service still answers


async def test_a_tenant_not_allowed_is_permission_denied(app: GpuApp) -> None:
    async with client_for(app, tenant_id="initech") as client:
        with pytest.raises(PermissionDenied, match="may not lease"):
            await client.allocate_gpu(device_id=0, memory_requested_mb=1)


async def test_the_client_refuses_obviously_bad_arguments_before_any_rpc(app: GpuApp) -> None:
    async with client_for(app, tenant_id="acme") as client:
        with pytest.raises(ValidationError, match="device_id"):
            await client.allocate_gpu(device_id=-1, memory_requested_mb=1)
        with pytest.raises(ValidationError, match="memory_requested_mb"):
            await client.allocate_gpu(device_id=0, memory_requested_mb=0)
        with pytest.raises(ValidationError, match="allocation_id"):
            await client.deallocate_gpu("")


async def test_without_a_gpu_the_service_does_not_start(tmp_path: Path) -> None:
    settings = load_settings(gpu_lease_db=str(tmp_path / "leases.sqlite3"))
    broken = NvmlStandIn(DEVICES)
    broken.fail_init = RuntimeError("driver not loaded")
    with pytest.raises(DeviceUnavailableError, match="driver not loaded"):
        await build_gpu_service(settings, address="127.0.0.1:0", library=broken)
    with pytest.raises(DeviceUnavailableError, match="no GPU"):
        await build_gpu_service(settings, address="127.0.0.1:0", library=NvmlStandIn([]))
