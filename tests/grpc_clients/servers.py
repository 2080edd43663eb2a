"""Real ``grpc.aio`` servers on loopback with small, scriptable servicers.

``GrpcTestServer`` serves the embedding and reranking services plus the standard
grpc.health.v1 service. ``server.control`` counts calls, records metadata and
the deadline each call arrived with, and on command aborts with chosen status
codes (``fail(...)``), fails every call (``always``) or answers slowly (``delay``).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from servicegrid.proto import (
    common_pb2,
    embedding_service_pb2,
    embedding_service_pb2_grpc,
    reranking_service_pb2,
    reranking_service_pb2_grpc,
)

# Reconnect quickly to a restarted server: the tests run in real time on the wire.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
)


ClientFactory = Callable[..., Any]
"""The ``make_client`` fixture: ``make_client(EmbeddingClient, target, **config_and_options)``."""


@dataclass
class Failure:
    code: grpc.StatusCode
    details: str = ""
    trailers: tuple[tuple[str, str], ...] = ()


@dataclass
class Control:
    """What the servicers do and what they saw."""

    calls: Counter[str] = field(default_factory=Counter)
    metadata: list[dict[str, str]] = field(default_factory=list)
    time_remaining: list[float | None] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    script: deque[Failure] = field(default_factory=deque)
    always: Failure | None = None
    delay: float = 0.0

    def fail(
        self, code: grpc.StatusCode, times: int = 1, details: str = "", **trailers: str
    ) -> None:
        """Abort the next ``times`` calls with ``code``; trailers as keyword arguments."""
        pairs = tuple((key.replace("_", "-"), value) for key, value in trailers.items())
        for _ in range(times):
            self.script.append(Failure(code, details or f"scripted {code.name}", pairs))

    def always_fail(self, code: grpc.StatusCode) -> None:
        """Abort every call (after any scripted ones) with ``code``."""
        self.always = Failure(code, f"always {code.name}")

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    async def enter(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self.calls[method] += 1
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata() or ()))
        self.time_remaining.append(context.time_remaining())
        if self.delay:
            await asyncio.sleep(self.delay)
        failure = self.script.popleft() if self.script else self.always
        if failure is not None:
            await context.abort(failure.code, failure.details, trailing_metadata=failure.trailers)


def _vector(text: str, normalize: bool) -> tuple[list[float], float]:
    values = [float(len(text)), float(sum(map(ord, text)) % 97), 1.0, 0.5]
    norm = math.sqrt(sum(v * v for v in values))
    if normalize:
        values = [v / norm for v in values]
        norm = 1.0
    return values, norm


class EmbeddingServicer(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    def __init__(self, control: Control) -> None:
        self.control = control

    def _embed(
        self, request: embedding_service_pb2.GenerateEmbeddingsRequest
    ) -> embedding_service_pb2.GenerateEmbeddingsResponse:
        results = []
        for text in request.texts:
            values, norm = _vector(text, request.config.normalize)
            results.append(
                embedding_service_pb2.EmbeddingResult(values=values, dimension=4, norm=norm)
            )
        return embedding_service_pb2.GenerateEmbeddingsResponse(
            embeddings=results,
            metadata=common_pb2.ProcessingMetadata(
                model_name=request.model_name or "default-model",
                batch_size=len(request.texts),
                total_requests=1,
            ),
        )

    async def GenerateEmbeddings(self, request: Any, context: Any) -> Any:
        await self.control.enter("GenerateEmbeddings", request, context)
        return self._embed(request)

    async def GenerateEmbeddingsBatch(self, request: Any, context: Any) -> Any:
        await self.control.enter("GenerateEmbeddingsBatch", request, context)
        return embedding_service_pb2.GenerateEmbeddingsBatchResponse(
            responses=[self._embed(one) for one in request.requests],
            metadata=common_pb2.ProcessingMetadata(total_requests=len(request.requests)),
        )

    async def ListModels(self, request: Any, context: Any) -> Any:
        await self.control.enter("ListModels", request, context)
        return embedding_service_pb2.ListModelsResponse(
            models=[
                embedding_service_pb2.EmbeddingModelInfo(
                    name="sentence-transformers/all-MiniLM-L6-v2",
                    dimension=384,
                    description="test model",
                    available=True,
                    max_sequence_length=256,
                )
            ]
        )

    async def GetHealth(self, request: Any, context: Any) -> Any:
        await self.control.enter("GetHealth", request, context)
        return common_pb2.HealthResponse(status="healthy", model_loaded=True)

    async def GetStats(self, request: Any, context: Any) -> Any:
        await self.control.enter("GetStats", request, context)
        return common_pb2.StatsResponse(total_requests=self.control.total, queue_depth=0)


def _score(query: str, document: str) -> float:
    words = set(query.lower().split())
    hits = sum(1 for word in document.lower().split() if word in words)
    return hits + 1.0 / (1.0 + len(document))


class RerankingServicer(reranking_service_pb2_grpc.RerankingServiceServicer):
    def __init__(self, control: Control) -> None:
        self.control = control

    def _rerank(
        self, request: reranking_service_pb2.RerankBatchRequest
    ) -> reranking_service_pb2.RerankBatchResponse:
        scored = sorted(
            ((index, _score(request.query, doc)) for index, doc in enumerate(request.documents)),
            key=lambda pair: pair[1],
            reverse=True,
        )
        return reranking_service_pb2.RerankBatchResponse(
            results=[
                reranking_service_pb2.RerankingResult(
                    document_index=index,
                    score=score,
                    document=request.documents[index] if request.config.return_documents else "",
                )
                for index, score in scored
            ],
            metadata=common_pb2.ProcessingMetadata(
                model_name=request.config.model_name or "default-reranker"
            ),
        )

    async def RerankBatch(self, request: Any, context: Any) -> Any:
        await self.control.enter("RerankBatch", request, context)
        return self._rerank(request)

    async def RerankMultipleBatches(self, request: Any, context: Any) -> Any:
        await self.control.enter("RerankMultipleBatches", request, context)
        return reranking_service_pb2.RerankMultipleBatchesResponse(
            responses=[self._rerank(one) for one in request.requests]
        )

    async def ListModels(self, request: Any, context: Any) -> Any:
        await self.control.enter("ListModels", request, context)
        return reranking_service_pb2.RerankingListModelsResponse(
            models=[
                reranking_service_pb2.RerankingModelInfo(
                    name="cross-encoder/ms-marco-MiniLM-L-6-v2",
                    description="test reranker",
                    available=True,
                    max_sequence_length=512,
                )
            ]
        )

    async def GetHealth(self, request: Any, context: Any) -> Any:
        await self.control.enter("GetHealth", request, context)
        return common_pb2.HealthResponse(status="healthy", model_loaded=True)

    async def GetStats(self, request: Any, context: Any) -> Any:
        await self.control.enter("GetStats", request, context)
        return common_pb2.StatsResponse(total_requests=self.control.total, total_items=7)


class GrpcTestServer:
    """Both model services and grpc.health.v1 on ``127.0.0.1``; restartable on the same port."""

    def __init__(
        self,
        *,
        serving: int = health_pb2.HealthCheckResponse.SERVING,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.control = Control()
        self.health = health.aio.HealthServicer()
        self.serving = serving
        self.credentials = credentials
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server(
            EmbeddingServicer(self.control), server
        )
        reranking_service_pb2_grpc.add_RerankingServiceServicer_to_server(
            RerankingServicer(self.control), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        await self.health.set("", self.serving)
        address = f"127.0.0.1:{self.port}"
        if self.credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, self.credentials)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stop at once: in-flight calls are cancelled, the port is closed."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(None)
