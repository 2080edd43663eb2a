"""The RerankingService servicer: validation, dynamic batching, sorted results, stats (seed 000).

Every request is checked before any work; a bad one is refused with
INVALID_ARGUMENT naming the field (``query``, ``documents[3]``,
``config.batch_size``, ``requests[1].config.model_name``). Each (query, document)
pair goes through the model's :class:`BatchEngine`, which merges it with other
callers' pairs; the results come back highest score first. A full queue answers
RESOURCE_EXHAUSTED, an expired deadline DEADLINE_EXCEEDED, and a model failure
INTERNAL for that batch only (through the runtime's error mapping).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from servicegrid.batching import BatchEngine
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.models import BiEncoderReranker, CrossEncoderReranker, RerankItem
from servicegrid.proto import common_pb2, reranking_service_pb2, reranking_service_pb2_grpc
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

__all__ = ["Limits", "Reranker", "RerankingModel", "RerankingServicer"]


Reranker = CrossEncoderReranker | BiEncoderReranker
"""The adapters the service can run: a real cross-encoder, or the bi-encoder stand-in."""


@dataclass(frozen=True, slots=True)
class RerankingModel:
    """A loaded reranker and the engine that batches its calls."""

    reranker: Reranker
    engine: BatchEngine[RerankItem, float]


@dataclass(frozen=True, slots=True)
class _Checked:
    """A validated request: the model to use, the batch size and timeout it asked for."""

    name: str
    model: RerankingModel
    batch_size: int
    timeout: float | None


class RerankingServicer(reranking_service_pb2_grpc.RerankingServiceServicer):
    """Serves every configured reranking model; ``default_model`` answers an empty model_name."""

    def __init__(
        self,
        models: Mapping[str, RerankingModel],
        *,
        default_model: str,
        device: str,
        limits: Limits = DEFAULT_LIMITS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if default_model not in models:
            raise ValueError(f"default_model {default_model!r} is not among {sorted(models)}")
        self.models = dict(models)
        self.default_model = default_model
        self.device = device
        self.limits = limits
        self.stats = ServiceStats(clock=clock)
        self._clock = clock

    # ---- RPCs ----------------------------------------------------------------------

    async def RerankBatch(
        self,
        request: reranking_service_pb2.RerankBatchRequest,
        context: grpc.aio.ServicerContext[
            reranking_service_pb2.RerankBatchRequest,
            reranking_service_pb2.RerankBatchResponse,
        ],
    ) -> reranking_service_pb2.RerankBatchResponse:
        with self.stats.track():
            checked = self._validate(request, field="")
            return await self._rerank(request, checked)

    async def RerankMultipleBatches(
        self,
        request: reranking_service_pb2.RerankMultipleBatchesRequest,
        context: grpc.aio.ServicerContext[
            reranking_service_pb2.RerankMultipleBatchesRequest,
            reranking_service_pb2.RerankMultipleBatchesResponse,
        ],
    ) -> reranking_service_pb2.RerankMultipleBatchesResponse:
        with self.stats.track():
            if not request.requests:
                raise invalid("requests", "must hold at least one request")
            total = sum(len(r.documents) for r in request.requests)
            if total > self.limits.max_items:
                raise invalid(
                    "requests",
                    f"hold {total} documents in all; at most {self.limits.max_items} per call",
                )
            started = self._clock.now()
            checked = [
                self._validate(sub, field=f"requests[{index}].")
                for index, sub in enumerate(request.requests)
            ]
            responses = await asyncio.gather(
                *(self._rerank(sub, c) for sub, c in zip(request.requests, checked, strict=True))
            )
            return reranking_service_pb2.RerankMultipleBatchesResponse(
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
            common_pb2.ListModelsRequest, reranking_service_pb2.RerankingListModelsResponse
        ],
    ) -> reranking_service_pb2.RerankingListModelsResponse:
        return reranking_service_pb2.RerankingListModelsResponse(
            models=[
                reranking_service_pb2.RerankingModelInfo(
                    name=name,
                    description=model.reranker.description,
                    available=True,
                    max_sequence_length=model.reranker.max_length,
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
            cache=self._cache_status(),
            gpu_memory_used_mb=gpu_memory_used_mb(self.device),
        )

    def _cache_status(self) -> dict[str, float] | None:
        """The bi-encoders' vector caches added together; None when only cross-encoders run."""
        caches = [
            model.reranker.cache
            for model in self.models.values()
            if isinstance(model.reranker, BiEncoderReranker)
        ]
        if not caches:
            return None
        hits, misses = sum(c.hits for c in caches), sum(c.misses for c in caches)
        lookups = hits + misses
        return {"hits": hits, "misses": misses, "hit_rate": hits / lookups if lookups else 0.0}

    # ---- the work ------------------------------------------------------------------

    def _model(self, name: str, *, field: str) -> tuple[str, RerankingModel]:
        name = name or self.default_model
        model = self.models.get(name)
        if model is None:
            available = ", ".join(sorted(self.models))
            raise invalid(
                f"{field}config.model_name", f"unknown model {name!r}; available: {available}"
            )
        return name, model

    def _validate(
        self, request: reranking_service_pb2.RerankBatchRequest, *, field: str
    ) -> _Checked:
        """Check the request; return the model, batch size and timeout (or None) it asks for."""
        query = request.query
        if not query.strip():
            raise invalid(f"{field}query", "must not be empty or blank")
        if len(query) > self.limits.max_text_chars:
            raise invalid(
                f"{field}query",
                f"is {len(query)} characters long; at most {self.limits.max_text_chars}",
            )
        check_texts(
            f"{field}documents",
            request.documents,
            max_items=self.limits.max_items,
            max_chars=self.limits.max_text_chars,
        )
        config = request.config
        name, model = self._model(config.model_name, field=field)
        batch_size = self.limits.default_batch_size
        if config.HasField("batch_size"):
            batch_size = check_positive_int(f"{field}config.batch_size", config.batch_size)
        timeout = None
        if config.HasField("timeout_seconds"):
            timeout = check_positive_float(f"{field}config.timeout_seconds", config.timeout_seconds)
        return _Checked(name, model, batch_size, timeout)

    async def _rerank(
        self, request: reranking_service_pb2.RerankBatchRequest, checked: _Checked
    ) -> reranking_service_pb2.RerankBatchResponse:
        started = self._clock.now()
        own = started + checked.timeout if checked.timeout is not None else None
        deadline = earliest(current_deadline(), own)

        documents = list(request.documents)
        engine = checked.model.engine
        reranker, query = checked.model.reranker, request.query
        # admitted (or refused) on a size estimate before paying for tokenization; the
        # place holds while the pairs are measured, then the whole request is queued
        with engine.reserve(
            [reranker.estimate_tokens(query, document) for document in documents],
            deadline=deadline,
        ) as place:
            items = await measured(documents, functools.partial(reranker.items, query))
            scores = await engine.submit_many(
                items, per_batch=checked.batch_size, reservation=place
            )
        self.stats.total_items += len(scores)

        ranked = sorted(range(len(scores)), key=lambda index: (-scores[index], index))
        return_documents = request.config.return_documents
        return reranking_service_pb2.RerankBatchResponse(
            results=[
                reranking_service_pb2.RerankingResult(
                    document_index=index,
                    score=scores[index],
                    document=documents[index] if return_documents else "",
                )
                for index in ranked
            ],
            metadata=self._metadata(checked.name, started, batch_size=checked.batch_size),
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
