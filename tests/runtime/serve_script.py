"""Serve a tiny EmbeddingService with ``serve()`` until SIGTERM/SIGINT.

Prints ``PORT <n>`` once it is SERVING and ``STOPPED`` after a graceful stop.
Run with ``PYTHONPATH=src``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from servicegrid.proto import common_pb2, embedding_service_pb2, embedding_service_pb2_grpc
from servicegrid.runtime import RunningServer, ServiceRegistration, create_server, serve


class HealthOnly(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    async def GetHealth(self, request: common_pb2.HealthRequest, context: Any) -> Any:
        return common_pb2.HealthResponse(status="healthy")


async def ready(running: RunningServer) -> None:
    await running.health.set_all(True)
    print(f"PORT {running.port}", flush=True)


async def main() -> None:
    service = ServiceRegistration.from_descriptor(
        embedding_service_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        HealthOnly(),
    )
    running = await create_server("127.0.0.1:0", services=[service])
    await serve(running, grace=2.0, ready=ready)
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
