"""Seed 000, GPU Management Service, "Client Usage": status, devices, allocate, deallocate."""

import asyncio
import os

from servicegrid.clients import GPUClient
from servicegrid.proto import gpu_service_pb2, gpu_service_pb2_grpc  # noqa: F401 - as the seed


async def main():
    # Initialize client
    gpu_client = GPUClient(service_url=os.getenv("GPU_SERVICE_URL", "localhost:50051"))

    # Get GPU status
    status = await gpu_client.get_status()
    print(f"Available GPUs: {status.available_gpus}")
    for gpu in status.gpus:
        print(f"GPU {gpu.device_id}: {gpu.memory_used_mb}/{gpu.memory_total_mb} MB")

    # List devices
    devices = await gpu_client.list_devices()
    for device in devices.devices:
        print(f"Device {device.device_id}: {device.name} ({device.memory_total_mb} MB)")

    # Allocate GPU
    allocation = await gpu_client.allocate_gpu(
        device_id=0, memory_requested_mb=4096, tenant_id="user123"
    )
    print(f"Allocation ID: {allocation.allocation_id}")

    # Deallocate GPU
    success = await gpu_client.deallocate_gpu(allocation.allocation_id)
    print(f"Deallocation successful: {success}")


if __name__ == "__main__":
    asyncio.run(main())
