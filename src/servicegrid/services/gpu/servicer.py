"""The GPUService servicer: NVML readings and tenant leases on GPU memory (seed 000).

The tenant is the request's ``tenant_id``, else the call's ``x-tenant-id``
metadata. Refusals: INVALID_ARGUMENT for a bad device, memory, lease length or
missing tenant; PERMISSION_DENIED for a tenant not allowed, over its quota, or
touching another tenant's lease; RESOURCE_EXHAUSTED when the device has not that
much unleased memory; NOT_FOUND when renewing a lease that is gone.
"""

from __future__ import annotations

import asyncio
import math

import grpc

from servicegrid import __version__
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ResourceNotFoundError
from servicegrid.gpu import DeviceReading, Lease, LeaseRequest, LeaseStore, Nvml, TenantPolicy
from servicegrid.proto import common_pb2, gpu_service_pb2, gpu_service_pb2_grpc
from servicegrid.runtime.context import current_tenant
from servicegrid.services.stats import ServiceStats
from servicegrid.services.validation import invalid

__all__ = ["GPUServicer"]

_pb = gpu_service_pb2
STANDIN_STATUS = "healthy (NVML stand-in: no real GPU)"


class GPUServicer(gpu_service_pb2_grpc.GPUServiceServicer):
    """Answers from ``nvml`` and ``store``; ``standin`` says the NVML is the stand-in."""

    def __init__(
        self,
        nvml: Nvml,
        store: LeaseStore,
        *,
        policy: TenantPolicy,
        default_lease_seconds: float,
        max_lease_seconds: float,
        standin: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.nvml = nvml
        self.store = store
        self.policy = policy
        self.default_lease_seconds = default_lease_seconds
        self.max_lease_seconds = max_lease_seconds
        self.standin = standin
        self.stats = ServiceStats(clock=clock)
        self._totals = {r.device_id: r.memory_total_mb for r in nvml.read()}

    # ---- reading ------------------------------------------------------------------------

    async def GetStatus(
        self,
        request: _pb.GPUStatusRequest,
        context: grpc.aio.ServicerContext[_pb.GPUStatusRequest, _pb.GPUStatusResponse],
    ) -> _pb.GPUStatusResponse:
        readings, leased = await self._readings()
        gpus = []
        for r in readings:
            unleased = r.memory_total_mb - leased.get(r.device_id, 0)
            gpus.append(
                _pb.GPUInfo(
                    device_id=r.device_id,
                    name=r.name,
                    memory_total_mb=r.memory_total_mb,
                    memory_used_mb=r.memory_used_mb,
                    utilization_percent=r.utilization_percent,
                    temperature_celsius=r.temperature_celsius,
                    status="available" if unleased > 0 else "fully leased",
                )
            )
        return _pb.GPUStatusResponse(
            status=STANDIN_STATUS if self.standin else "healthy",
            available_gpus=sum(1 for gpu in gpus if gpu.status == "available"),
            gpus=gpus,
        )

    async def ListDevices(
        self,
        request: _pb.ListDevicesRequest,
        context: grpc.aio.ServicerContext[_pb.ListDevicesRequest, _pb.ListDevicesResponse],
    ) -> _pb.ListDevicesResponse:
        readings, leased = await self._readings()
        return _pb.ListDevicesResponse(
            devices=[
                _pb.GPUDevice(
                    device_id=r.device_id,
                    name=r.name,
                    memory_total_mb=r.memory_total_mb,
                    compute_capability=r.compute_capability,
                    available=r.memory_total_mb - leased.get(r.device_id, 0) > 0,
                )
                for r in readings
            ]
        )

    async def GetHealth(
        self,
        request: common_pb2.HealthRequest,
        context: grpc.aio.ServicerContext[common_pb2.HealthRequest, common_pb2.HealthResponse],
    ) -> common_pb2.HealthResponse:
        active = await asyncio.to_thread(self.store.active)
        return common_pb2.HealthResponse(
            status="healthy",
            model_loaded=False,
            device="nvml-standin" if self.standin else "nvml",
            uptime_seconds=self.stats.uptime,
            version=__version__,
            details={
                "devices": str(len(self._totals)),
                "active_leases": str(len(active)),
                "nvml": "stand-in (no real GPU)" if self.standin else "nvml",
            },
        )

    async def _readings(self) -> tuple[list[DeviceReading], dict[int, int]]:
        """NVML's readings and the leased MiB per device, read side by side off the loop."""
        readings, leased = await asyncio.gather(
            asyncio.to_thread(self.nvml.read), asyncio.to_thread(self.store.leased_mb)
        )
        return readings, leased

    # ---- leases -------------------------------------------------------------------------

    async def AllocateGPU(
        self,
        request: _pb.AllocateGPURequest,
        context: grpc.aio.ServicerContext[_pb.AllocateGPURequest, _pb.AllocateGPUResponse],
    ) -> _pb.AllocateGPUResponse:
        with self.stats.track():
            tenant = self._tenant(request.tenant_id)
            total = self._totals.get(request.device_id)
            if total is None:
                ids = ", ".join(str(i) for i in sorted(self._totals))
                raise invalid("device_id", f"no GPU {request.device_id} here (devices: {ids})")
            if not 0 < request.memory_requested_mb <= total:
                raise invalid(
                    "memory_requested_mb",
                    f"must be between 1 and GPU {request.device_id}'s {total} MiB,"
                    f" got {request.memory_requested_mb}",
                )
            seconds = self._lease_seconds(request)
            lease = await asyncio.to_thread(
                self.store.allocate,
                LeaseRequest(
                    device_id=request.device_id,
                    memory_mb=request.memory_requested_mb,
                    tenant_id=tenant,
                    lease_seconds=seconds,
                    idempotency_key=request.idempotency_key,
                ),
                device_total_mb=total,
                policy=self.policy,
            )
            return _pb.AllocateGPUResponse(
                success=True, allocation_id=lease.allocation_id, allocation=_allocation(lease)
            )

    async def DeallocateGPU(
        self,
        request: _pb.DeallocateGPURequest,
        context: grpc.aio.ServicerContext[_pb.DeallocateGPURequest, _pb.DeallocateGPUResponse],
    ) -> _pb.DeallocateGPUResponse:
        with self.stats.track():
            allocation_id = _allocation_id(request.allocation_id)
            tenant = self._tenant(request.tenant_id)
            released = await asyncio.to_thread(self.store.release, allocation_id, tenant)
            return _pb.DeallocateGPUResponse(success=released)

    async def RenewAllocation(
        self,
        request: _pb.RenewAllocationRequest,
        context: grpc.aio.ServicerContext[_pb.RenewAllocationRequest, _pb.RenewAllocationResponse],
    ) -> _pb.RenewAllocationResponse:
        with self.stats.track():
            allocation_id = _allocation_id(request.allocation_id)
            tenant = self._tenant(request.tenant_id)
            seconds = self._lease_seconds(request)
            lease = await asyncio.to_thread(self.store.renew, allocation_id, tenant, seconds)
            if lease is None:
                raise ResourceNotFoundError(
                    f"allocation {allocation_id} is not active (released or expired)",
                    resource_type="gpu_allocation",
                    resource_id=allocation_id,
                )
            return _pb.RenewAllocationResponse(success=True, allocation=_allocation(lease))

    # ---- checks -------------------------------------------------------------------------

    def _tenant(self, given: str) -> str:
        tenant = given.strip() or (current_tenant() or "")
        if not tenant:
            raise invalid("tenant_id", "required (or send x-tenant-id metadata)")
        self.policy.check_allowed(tenant)
        return tenant

    def _lease_seconds(self, request: _pb.AllocateGPURequest | _pb.RenewAllocationRequest) -> float:
        if not request.HasField("lease_seconds"):
            return self.default_lease_seconds
        seconds = request.lease_seconds
        if not 0 < seconds <= self.max_lease_seconds:
            raise invalid(
                "lease_seconds",
                f"must be between 1 and {self.max_lease_seconds:g}, got {seconds}",
            )
        return float(seconds)


def _allocation_id(value: str) -> str:
    if not value.strip():
        raise invalid("allocation_id", "required")
    return value.strip()


def _allocation(lease: Lease) -> _pb.GPUAllocation:
    return _pb.GPUAllocation(
        allocation_id=lease.allocation_id,
        device_id=lease.device_id,
        memory_allocated_mb=lease.memory_mb,
        tenant_id=lease.tenant_id,
        allocated_at=math.floor(lease.allocated_at),
        expires_at=math.floor(lease.expires_at),  # never later than the real expiry
    )
