"""``OrchestratorService``: a user's question answered from their questions and the documents,
with citations, through every service that can help and around every one that is down.

.. code-block:: python

    from servicegrid import OrchestrationRequest, orchestrator_service

    request = OrchestrationRequest(user_id="user-123", query="What is machine learning?",
                                   context_type="questions", max_results=5)
    response = await orchestrator_service.orchestrate_user_query(request)
    response.answer, response.citations, response.services_used

One query: the user's profile (user service), the change feed caught up (question
service; a user's questions are indexed on their first query), hybrid retrieval
(BM25 + dense vectors in Qdrant, fused, reranked), then an answer from the LLM hosts
citing its sources as [n], or an extractive one. Each service that fails is reported
in ``services_used`` with what was done instead. The index lives per event loop,
opened on first use there and closed with that loop or :meth:`OrchestratorService.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ResourceNotFoundError, ServiceError, ServiceUnavailableError
from servicegrid.llm import DistributedLLMClient
from servicegrid.retrieval.answers import compose_answer
from servicegrid.retrieval.chunks import Hit, Source
from servicegrid.retrieval.fusion import Fusion
from servicegrid.retrieval.index import HybridIndex, Scope
from servicegrid.retrieval.indexing import Indexed, Indexer
from servicegrid.retrieval.models import (
    Citation,
    ContextType,
    OrchestrationRequest,
    OrchestrationResponse,
    ServiceUsed,
)
from servicegrid.retrieval.retriever import HybridRetriever, ServiceUse
from servicegrid.retrieval.upstreams import Upstreams
from servicegrid.settings import Settings, load_settings
from servicegrid.transports.loop_local import LoopLocal

__all__ = ["OrchestratorService", "orchestrator_service"]

_log = logging.getLogger("servicegrid.retrieval")

QUESTIONS = "question-service"
USERS = "user-service"
LLM = "llm"
_SOURCES: dict[ContextType, frozenset[Source]] = {
    "questions": frozenset({"question"}),
    "documents": frozenset({"document"}),
    "all": frozenset({"question", "document"}),
}


@dataclass(slots=True)
class _Engine:
    """One event loop's index, and the retriever and indexer over it."""

    index: HybridIndex
    retriever: HybridRetriever
    indexer: Indexer


def _why(error: ServiceError) -> str:
    return f"{type(error).__name__}: {error.message}"[:300]


class OrchestratorService:
    """See the module docstring. Given ``upstreams`` (and ``index``) belong to the caller;
    without them they are built from ``settings`` (default: the environment, read on first
    use) and closed by :meth:`aclose`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        upstreams: Upstreams | None = None,
        index: HybridIndex | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._owns_upstreams = upstreams is None
        self._given_index = index
        self._clock = clock
        self._engines: LoopLocal[_Engine] = LoopLocal(
            self._new_engine, self._close_engine, what="orchestrator"
        )

    # ---- parts -------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def upstreams(self) -> Upstreams:
        if self._upstreams is None:
            self._upstreams = Upstreams.from_settings(self.settings)
        return self._upstreams

    def _new_engine(self) -> _Engine:
        settings = self.settings
        index = self._given_index or HybridIndex.from_settings(settings)
        retriever = HybridRetriever(
            index,
            embedding=self.upstreams.embedding,
            reranking=self.upstreams.reranking if settings.retrieval_rerank else None,
            candidates=settings.retrieval_candidates,
            fusion=Fusion(settings.retrieval_fusion, settings.retrieval_dense_weight),
            rerank_model=settings.retrieval_rerank_model,
        )
        return _Engine(index, retriever, Indexer(retriever))

    async def _close_engine(self, engine: _Engine) -> None:
        if engine.index is not self._given_index:
            await engine.index.aclose()

    async def engine(self) -> _Engine:
        """This event loop's index (opened), retriever and indexer."""
        engine = self._engines.get()
        await engine.index.open()
        return engine

    # ---- the query ---------------------------------------------------------------------

    async def orchestrate_user_query(self, request: OrchestrationRequest) -> OrchestrationResponse:
        """Answer ``request``; raises only for the index itself (a ServiceError)."""
        started = self._clock.now()
        engine = await self.engine()
        uses: list[ServiceUse] = []
        user_context = await self._user_context(request, uses)
        if request.context_type in ("questions", "all"):
            await self._follow_questions(engine, request, uses)
        else:
            uses.append(ServiceUse(QUESTIONS, "skipped", "context_type is documents"))
        scope = Scope(sources=_SOURCES[request.context_type], user_id=request.user_id)
        found = await engine.retriever.search(request.query, scope=scope, limit=request.max_results)
        uses += found.uses
        llm = await self.upstreams.llm_client()
        answer = await compose_answer(
            request.query,
            found.hits,
            llm=llm,
            model=self.settings.llm_model,
            user_context=user_context,
        )
        if llm is None:
            uses.append(ServiceUse(LLM, "skipped", "no LLM host configured: extractive answer"))
        elif answer.error is not None:
            uses.append(ServiceUse(LLM, "failed", f"extractive answer: {answer.error}"))
        elif answer.mode == "llm":
            uses.append(ServiceUse(LLM, "used"))
        else:
            uses.append(ServiceUse(LLM, "skipped", "nothing found to answer from"))
        return OrchestrationResponse(
            query=request.query,
            answer=answer.text,
            answer_mode=answer.mode,
            citations=[_citation(hit) for hit in found.hits],
            user_context=user_context,
            services_used=[
                ServiceUsed(service=u.service, status=u.status, reason=u.reason) for u in uses
            ],
            processing_time_ms=round(1000 * (self._clock.now() - started), 3),
        )

    async def _user_context(
        self, request: OrchestrationRequest, uses: list[ServiceUse]
    ) -> dict[str, Any] | None:
        if not request.include_user_context:
            uses.append(ServiceUse(USERS, "skipped", "include_user_context is false"))
            return None
        try:
            user = await self.upstreams.users(request.use_grpc).get_user(request.user_id)
        except ResourceNotFoundError:
            uses.append(ServiceUse(USERS, "used", f"no user {request.user_id}"))
            return None
        except ServiceError as error:
            uses.append(ServiceUse(USERS, "failed", f"no user context: {_why(error)}"))
            return None
        uses.append(ServiceUse(USERS, "used"))
        return {
            "user_id": user.get("id", request.user_id),
            "username": user.get("username", ""),
            "full_name": user.get("full_name", ""),
            "interests": list(user.get("interests", ())),
        }

    async def _follow_questions(
        self, engine: _Engine, request: OrchestrationRequest, uses: list[ServiceUse]
    ) -> None:
        """Bring the user's questions into the index (first time) or up to date (the feed)."""
        source = self.upstreams.questions(request.use_grpc)
        try:
            if request.user_id in await engine.indexer.indexed_users():
                await engine.indexer.catch_up(source)
            else:
                done = await engine.indexer.index_user_questions(request.user_id, source)
                uses += [use for use in done.uses if use.status == "failed"]
        except ServiceError as error:
            uses.append(ServiceUse(QUESTIONS, "failed", f"what is indexed: {_why(error)}"))
            return
        uses.append(ServiceUse(QUESTIONS, "used"))

    # ---- indexing ----------------------------------------------------------------------

    async def index_user_questions(self, user_id: str, *, use_grpc: bool = False) -> Indexed:
        """Index ``user_id``'s questions (idempotent) and follow them through the change feed.

        Raises the question service's ServiceError when it cannot be read.
        """
        engine = await self.engine()
        return await engine.indexer.index_user_questions(
            user_id, self.upstreams.questions(use_grpc)
        )

    async def index_document(
        self, file_name: str, data: bytes, *, user_id: str | None = None
    ) -> Indexed:
        """Convert a PDF through the document service and index it; raises its ServiceError."""
        documents = self.upstreams.documents
        if documents is None:
            raise ServiceUnavailableError("no document service is configured")
        engine = await self.engine()
        return await engine.indexer.index_document(file_name, data, documents, user_id=user_id)

    # ---- operations --------------------------------------------------------------------

    async def health(self, *, use_grpc: bool = False) -> dict[str, Any]:
        """Every service the orchestrator uses, probed now, and what a query would do without
        each: ``{"status", "services": {name: {...}}, "index": {...}}``."""
        up = self.upstreams
        checks: dict[str, Any] = {"embedding-service": up.embedding.health_check()}
        if up.reranking is not None:
            checks["reranking-service"] = up.reranking.health_check()
        if up.documents is not None:
            checks["docling-vlm-service"] = up.documents.health_check()
        checks[USERS] = up.users(use_grpc).health_check()
        checks[QUESTIONS] = up.questions(use_grpc).health_check()
        checks["api-gateway"] = up.api_gateway(use_grpc).health_check()
        reports = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        services = {name: _health_entry(name, report) for name, report in reports.items()}
        llm = await up.llm_client()
        services[LLM] = _llm_entry(llm)
        engine = await self.engine()
        index = {
            "backend": engine.index.backend,
            "chunks": await engine.index.count(),
            "indexed_users": await engine.indexer.indexed_users(),
        }
        down = [name for name, entry in services.items() if entry["status"] == "unhealthy"]
        return {
            "status": "healthy" if not down else "degraded",
            "protocol": "grpc" if use_grpc else "rest",
            "services": services,
            "index": index,
        }

    async def aclose(self) -> None:
        """Close the index of every loop and the clients this service built."""
        await self._engines.aclose()
        if self._owns_upstreams and self._upstreams is not None:
            await self._upstreams.aclose()
            self._upstreams = None
        self._engines = LoopLocal(self._new_engine, self._close_engine, what="orchestrator")


_INSTEAD = {
    "embedding-service": "queries use BM25 alone",
    "reranking-service": "queries use the fused ranking",
    QUESTIONS: "queries answer from what is indexed",
    USERS: "answers come without user context",
    "docling-vlm-service": "documents cannot be indexed",
    "api-gateway": "the /services/gateway routes fail",
    LLM: "answers are extractive",
}


def _health_entry(name: str, report: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "status": report.get("status", "unhealthy"),
        "response_time_ms": report.get("response_time_ms"),
    }
    if report.get("error"):
        entry["error"] = report["error"]
    if entry["status"] != "healthy":
        entry["degradation"] = _INSTEAD.get(name, "")
    return entry


def _llm_entry(llm: DistributedLLMClient | None) -> dict[str, Any]:
    """The LLM hosts as the client sees them: usable while one is enabled with its breaker
    not open (the client probes no host on its own)."""
    if llm is None:
        return {"status": "not configured", "degradation": _INSTEAD[LLM]}
    hosts = llm.get_metrics()["hosts"]
    usable = [
        name
        for name, host in hosts.items()
        if host["enabled"] and host["circuit_breaker"] != "open"
    ]
    entry: dict[str, Any] = {"status": "healthy" if usable else "unhealthy", "hosts": hosts}
    if not usable:
        entry["degradation"] = _INSTEAD[LLM]
    return entry


def _citation(hit: Hit) -> Citation:
    chunk = hit.chunk
    if chunk.source == "question":
        return Citation(
            id=chunk.ref, source="question", text=chunk.text, score=hit.score, title=chunk.title
        )
    return Citation(
        id=chunk.id,
        source="document",
        text=chunk.text,
        score=hit.score,
        title=chunk.title,
        file_name=chunk.ref,
        page=chunk.page,
    )


orchestrator_service = OrchestratorService()
"""Seed 002's module-level instance: settings read and clients built on first use."""
