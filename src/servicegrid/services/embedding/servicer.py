"""The EmbeddingService servicer: validation, cache, dynamic batching, stats (seed 000).

Every request is checked before any work; a bad one is refused with
INVALID_ARGUMENT naming the field (``texts[3]``, ``config.batch_size``,
``requests[1].model_name``). Texts found in the LRU cache are answered from it;
the others go through the model's :class:`BatchEngine`, which merges them with
other callers' texts. A full queue answers RESOURCE_EXHAUSTED, an expired
deadline DEADLINE_EXCEEDED, and a model failure INTERNAL for that batch only
(through the runtime's error mapping).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from servicegrid.batching import BatchEngine
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.models import Embedding, EmbedItem
from servicegrid.models.cache import LRUCache, cache_key
from servicegrid.models.embedders import TextEmbedder
from servicegrid.proto import common_pb2, embedding_service_pb2, embedding_service_pb2_grpc
from servicegrid.resilience.deadline import current_deadline, earliest
from servicegrid.runtime import gpu_memory_used_mb
from servicegrid.services.reporting import health_response, measured, processing_metadata
from servicegrid.services.stats import ServiceStats
from servicegrid.services.validation import (
    DEFAULT_LIMITS,
    Limits,
    check_positive_float,
    check_positive_int,
    check_texts,
    invalid,
)

__all__ = ["EmbeddingModel", "EmbeddingServicer", "Limits"]


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """A loaded model and the engine that batches its calls."""

    embedder: TextEmbedder
    engine: BatchEngine[EmbedItem, Embedding]


class EmbeddingServicer(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    """Serves every configured embedding model; ``default_model`` answers an empty model_name."""

    def __init__(
        self,
        models: Mapping[str, EmbeddingModel],
        *,
        default_model: str,
        device: str,
        limits: Limits = DEFAULT_LIMITS,
        cache: LRUCache[Embedding] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if default_model not in models:
            raise ValueError(f"default_model {default_model!r} is not among {sorted(models)}")
        self.models = dict(models)
        self.default_model = default_model
        self.device = device
        self.limits = limits
        self.cache: LRUCache[Embedding] = cache if cache is not None else LRUCache()
        self.stats = ServiceStats(clock=clock)
        self._clock = clock

    # ---- RPCs ----------------------------------------------------------------------

    async def GenerateEmbeddings(
        self,
        request: embedding_service_pb2.GenerateEmbeddingsRequest,
        context: grpc.aio.ServicerContext[
            embedding_service_pb2.GenerateEmbeddingsRequest,
            embedding_service_pb2.GenerateEmbeddingsResponse,
        ],
    ) -> embedding_service_pb2.GenerateEmbeddingsResponse:
        with self.stats.track():
            return await self._generate(request, field="")

    async def GenerateEmbeddingsBatch(
        self,
        request: embedding_service_pb2.GenerateEmbeddingsBatchRequest,
        context: grpc.aio.ServicerContext[
            embedding_service_pb2.GenerateEmbeddingsBatchRequest,
            embedding_service_pb2.GenerateEmbeddingsBatchResponse,
        ],
    ) -> embedding_service_pb2.GenerateEmbeddingsBatchResponse:
        with self.stats.track():
            if not request.requests:
                raise invalid("requests", "must hold at least one request")
            total = sum(len(r.texts) for r in request.requests)
            if total > self.limits.max_items:
                raise invalid(
                    "requests",
                    f"hold {total} texts in all; at most {self.limits.max_items} per call",
                )
            started = self._clock.now()
            for index, sub in enumerate(request.requests):
                self._validate(sub, field=f"requests[{index}].")
            responses = await asyncio.gather(
                *(
                    self._generate(sub, field=f"requests[{index}].")
                    for index, sub in enumerate(request.requests)
                )
            )
            return embedding_service_pb2.GenerateEmbeddingsBatchResponse(
                responses=responses,
                metadata=self._metadata(
                    responses[0].metadata.model_name,
                    started,
                    batch_size=max(r.metadata.batch_size for r in responses),
                ),
            )

    async def ListModels(
        self,
        request: common_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[
            common_pb2.ListModelsRequest, embedding_service_pb2.ListModelsResponse
        ],
    ) -> embedding_service_pb2.ListModelsResponse:
        return embedding_service_pb2.ListModelsResponse(
            models=[
                embedding_service_pb2.EmbeddingModelInfo(
                    name=name,
                    dimension=model.embedder.dimension,
                    description=model.embedder.description
                    or f"sentence-transformers model on {self.device}",
                    available=True,
                    max_sequence_length=model.embedder.max_length,
                )
                for name, model in self.models.items()
            ]
        )

    async def GetHealth(
        self,
        request: common_pb2.HealthRequest,
        context: grpc.aio.ServicerContext[common_pb2.HealthRequest, common_pb2.HealthResponse],
    ) -> common_pb2.HealthResponse:
        return health_response(
            {name: model.engine for name, model in self.models.items()},
            device=self.device,
            uptime=self.stats.uptime,
            default_model=self.default_model,
        )

    async def GetStats(
        self,
        request: common_pb2.StatsRequest,
        context: grpc.aio.ServicerContext[common_pb2.StatsRequest, common_pb2.StatsResponse],
    ) -> common_pb2.StatsResponse:
        return self.stats.to_proto(
            engines=[model.engine.stats() for model in self.models.values()],
            cache=self.cache.get_status(),
            gpu_memory_used_mb=gpu_memory_used_mb(self.device),
        )

    # ---- the work ------------------------------------------------------------------

    def _model(self, name: str, *, field: str) -> tuple[str, EmbeddingModel]:
        name = name or self.default_model
        model = self.models.get(name)
        if model is None:
            available = ", ".join(sorted(self.models))
            raise invalid(f"{field}model_name", f"unknown model {name!r}; available: {available}")
        return name, model

    def _validate(
        self, request: embedding_service_pb2.GenerateEmbeddingsRequest, *, field: str
    ) -> tuple[int, float | None]:
        """Check the request; return (batch size, timeout seconds or None)."""
        self._model(request.model_name, field=field)
        check_texts(
            f"{field}texts",
            request.texts,
            max_items=self.limits.max_items,
            max_chars=self.limits.max_text_chars,
        )
        config = request.config
        batch_size = self.limits.default_batch_size
        if config.HasField("batch_size"):
            batch_size = check_positive_int(f"{field}config.batch_size", config.batch_size)
        timeout = None
        if config.HasField("timeout_seconds"):
            timeout = check_positive_float(f"{field}config.timeout_seconds", config.timeout_seconds)
        return batch_size, timeout

    async def _generate(
        self, request: embedding_service_pb2.GenerateEmbeddingsRequest, *, field: str
    ) -> embedding_service_pb2.GenerateEmbeddingsResponse:
        started = self._clock.now()
        batch_size, timeout = self._validate(request, field=field)
        name, model = self._model(request.model_name, field=field)
        normalize = request.config.normalize
        own = started + timeout if timeout is not None else None
        deadline = earliest(current_deadline(), own)

        texts = list(request.texts)
        keys = [cache_key(name, text, normalize=normalize) for text in texts]
        results: list[Embedding | None] = [self.cache.get(key) for key in keys]
        missing = [index for index, found in enumerate(results) if found is None]
        if missing:
            embedder, wanted = model.embedder, [texts[i] for i in missing]
            # admitted (or refused) on a size estimate before paying for tokenization; the
            # place holds while the texts are measured, then the whole request is queued
            with model.engine.reserve(
                [embedder.estimate_tokens(text) for text in wanted], deadline=deadline
            ) as place:
                items = await measured(
                    wanted, functools.partial(embedder.items, normalize=normalize)
                )
                computed = await model.engine.submit_many(
                    items, per_batch=batch_size, reservation=place
                )
            for index, embedding in zip(missing, computed, strict=True):
                results[index] = embedding
                self.cache.put(keys[index], embedding)
        embeddings = [r for r in results if r is not None]
        self.stats.total_items += len(embeddings)
        self.stats.truncated += sum(1 for e in embeddings if e.truncated)
        return embedding_service_pb2.GenerateEmbeddingsResponse(
            embeddings=[
                embedding_service_pb2.EmbeddingResult(
                    values=e.values.tolist(),
                    dimension=len(e.values),
                    norm=e.norm,
                    truncated=e.truncated,
                    token_count=e.tokens,
                )
                for e in embeddings
            ],
            metadata=self._metadata(name, started, batch_size=batch_size),
        )

    def _metadata(
        self, model_name: str, started: float, *, batch_size: int
    ) -> common_pb2.ProcessingMetadata:
        return processing_metadata(
            model_name,
            elapsed=self._clock.now() - started,
            device=self.device,
            batch_size=batch_size,
            total_requests=self.stats.total_requests,
        )
