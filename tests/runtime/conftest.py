"""A tiny EmbeddingService servicer served by the real runtime on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from servicegrid.errors import ResourceExhausted, ValidationError
from servicegrid.proto import common_pb2, embedding_service_pb2, embedding_service_pb2_grpc
from servicegrid.resilience.deadline import remaining
from servicegrid.runtime import (
    RunningServer,
    ServiceRegistration,
    create_server,
    current_request_id,
    current_tenant,
    current_traceparent,
)

EMBEDDING = embedding_service_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name
SLOW_SECONDS = 0.3
VECTOR = [0.25, 0.5, 0.75]


class FakeEmbeddingServicer(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    """One fixed vector per text; special texts fail, crash, abort or sleep."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.slow_started = asyncio.Event()

    async def GenerateEmbeddings(
        self, request: embedding_service_pb2.GenerateEmbeddingsRequest, context: Any
    ) -> embedding_service_pb2.GenerateEmbeddingsResponse:
        texts = list(request.texts)
        self.calls.append(texts)
        if not texts:
            raise ValidationError("texts: must not be empty")
        if "crash" in texts:
            raise RuntimeError("boom")
        if "busy" in texts:
            raise ResourceExhausted("queue full", retry_after=2.5)
        if "abort" in texts:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such model")
        if "slow" in texts:
            self.slow_started.set()
            left = remaining()
            await asyncio.sleep(SLOW_SECONDS if left is None else min(SLOW_SECONDS, left))
        return embedding_service_pb2.GenerateEmbeddingsResponse(
            embeddings=[
                embedding_service_pb2.EmbeddingResult(values=VECTOR, dimension=len(VECTOR))
                for _ in texts
            ]
        )

    async def GetHealth(
        self, request: common_pb2.HealthRequest, context: Any
    ) -> common_pb2.HealthResponse:
        left = remaining()
        return common_pb2.HealthResponse(
            status="healthy",
            details={
                "request_id": current_request_id() or "",
                "tenant": current_tenant() or "",
                "traceparent": current_traceparent() or "",
                "remaining": "" if left is None else repr(left),
            },
        )


def registration(servicer: FakeEmbeddingServicer) -> ServiceRegistration:
    return ServiceRegistration.from_descriptor(
        embedding_service_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        servicer,
    )


@dataclass
class Served:
    """A started server, the servicer behind it and a channel to it."""

    running: RunningServer
    servicer: FakeEmbeddingServicer
    registry: CollectorRegistry
    channel: grpc.aio.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.running.port}")

    @property
    def stub(self) -> Any:
        return embedding_service_pb2_grpc.EmbeddingServiceStub(self.channel)


async def build(**options: Any) -> Served:
    """Create (not start) a server for a fresh servicer on a fresh metrics registry."""
    servicer = FakeEmbeddingServicer()
    registry = CollectorRegistry()
    running = await create_server(
        "127.0.0.1:0", services=[registration(servicer)], registry=registry, **options
    )
    return Served(running, servicer, registry)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """A started server on loopback; health not yet marked SERVING."""
    s = await build()
    await s.running.server.start()
    try:
        yield s
    finally:
        await s.channel.close()
        await s.running.server.stop(None)


def embed_request(*texts: str) -> embedding_service_pb2.GenerateEmbeddingsRequest:
    return embedding_service_pb2.GenerateEmbeddingsRequest(texts=list(texts))
