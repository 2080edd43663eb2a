"""``GPUClient``: seed 000's client for the GPU management service (:50051).

.. code-block:: python

    gpu_client = GPUClient(service_url="localhost:50051")
    status = await gpu_client.get_status()
    allocation = await gpu_client.allocate_gpu(
        device_id=0, memory_requested_mb=4096, tenant_id="user123"
    )
    success = await gpu_client.deallocate_gpu(allocation.allocation_id)

Each ``allocate_gpu`` call carries an idempotency key (a fresh one unless
given), so the client's own retries never lease twice. Leases expire;
``renew_allocation`` extends one. The client remembers which tenant each of its
allocations was made for, so ``deallocate_gpu(allocation_id)`` needs no tenant,
as in the seed.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from servicegrid.clients.grpc_base import GrpcServiceClient, invalid_argument
from servicegrid.proto import gpu_service_pb2, gpu_service_pb2_grpc

__all__ = ["GPUClient"]

_pb = gpu_service_pb2


class GPUClient(GrpcServiceClient):
    """Client for ``servicegrid.v1.GPUService``; every method raises a ServiceError."""

    default_service_name = "gpu"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["GPUService"].full_name
    stub_class = gpu_service_pb2_grpc.GPUServiceStub

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owners: dict[str, str] = {}

    def _status_reporter(self) -> Any:
        return self.circuit_breaker

    def breaker_status(self) -> dict[str, Any]:
        """Seed 001's breaker status (other clients' ``get_status()``; here that is the GPUs')."""
        return dict(self.circuit_breaker.get_status())

    async def get_status(  # type: ignore[override]
        self, *, timeout: float | None = None
    ) -> _pb.GPUStatusResponse:
        """Every GPU's memory, load and temperature, and how many have unleased memory.

        Seed 000's meaning of ``get_status`` for this client; the breaker's status
        is :meth:`breaker_status`.
        """
        response = await self._call("GetStatus", _pb.GPUStatusRequest(), timeout=timeout)
        return cast(_pb.GPUStatusResponse, response)

    async def list_devices(self, *, timeout: float | None = None) -> _pb.ListDevicesResponse:
        """Every GPU's name, memory, compute capability and availability."""
        response = await self._call("ListDevices", _pb.ListDevicesRequest(), timeout=timeout)
        return cast(_pb.ListDevicesResponse, response)

    async def allocate_gpu(
        self,
        device_id: int,
        memory_requested_mb: int,
        tenant_id: str = "",
        *,
        idempotency_key: str | None = None,
        lease_seconds: int | None = None,
        timeout: float | None = None,
    ) -> _pb.GPUAllocation:
        """Lease ``memory_requested_mb`` MiB on GPU ``device_id`` for ``tenant_id``.

        An empty ``tenant_id`` means the config's tenant id. Returns the
        allocation (``allocation_id``, ``expires_at``, ...).
        """
        if not isinstance(device_id, int) or device_id < 0:
            raise invalid_argument(
                self.service_name, "device_id", f"must be an int >= 0, got {device_id!r}"
            )
        if not isinstance(memory_requested_mb, int) or memory_requested_mb <= 0:
            raise invalid_argument(
                self.service_name,
                "memory_requested_mb",
                f"must be an int > 0, got {memory_requested_mb!r}",
            )
        request = _pb.AllocateGPURequest(
            device_id=device_id,
            memory_requested_mb=memory_requested_mb,
            tenant_id=tenant_id or (self.config.tenant_id or ""),
            idempotency_key=idempotency_key or uuid.uuid4().hex,
        )
        if lease_seconds is not None:
            request.lease_seconds = lease_seconds
        response = cast(
            _pb.AllocateGPUResponse, await self._call("AllocateGPU", request, timeout=timeout)
        )
        self._owners[response.allocation.allocation_id] = response.allocation.tenant_id
        return response.allocation

    async def deallocate_gpu(
        self, allocation_id: str, tenant_id: str = "", *, timeout: float | None = None
    ) -> bool:
        """End a lease; False when it had already ended (released or expired)."""
        allocation_id = self._allocation_id(allocation_id)
        request = _pb.DeallocateGPURequest(
            allocation_id=allocation_id, tenant_id=self._owner(allocation_id, tenant_id)
        )
        response = await self._call("DeallocateGPU", request, timeout=timeout)
        self._owners.pop(allocation_id, None)
        return bool(cast(_pb.DeallocateGPUResponse, response).success)

    async def renew_allocation(
        self,
        allocation_id: str,
        tenant_id: str = "",
        *,
        lease_seconds: int | None = None,
        timeout: float | None = None,
    ) -> _pb.GPUAllocation:
        """Extend a lease to ``lease_seconds`` from now (the service's default if None)."""
        allocation_id = self._allocation_id(allocation_id)
        request = _pb.RenewAllocationRequest(
            allocation_id=allocation_id, tenant_id=self._owner(allocation_id, tenant_id)
        )
        if lease_seconds is not None:
            request.lease_seconds = lease_seconds
        response = await self._call("RenewAllocation", request, timeout=timeout)
        return cast(_pb.RenewAllocationResponse, response).allocation

    def _owner(self, allocation_id: str, tenant_id: str) -> str:
        """The tenant given, else the one this client allocated for, else the config's."""
        return tenant_id or self._owners.get(allocation_id) or (self.config.tenant_id or "")

    def _allocation_id(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise invalid_argument(
                self.service_name, "allocation_id", f"must be a non-empty string, got {value!r}"
            )
        return value
