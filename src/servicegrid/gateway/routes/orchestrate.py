"""Seed 002's orchestrator endpoints: ``/orchestrate/query`` and its indexing and operations.

The app provides ``state.orchestrator`` (an
:class:`~servicegrid.retrieval.orchestrator.OrchestratorService` over the gateway's clients).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile

from servicegrid import catalogue
from servicegrid.catalogue import WireProtocol
from servicegrid.discovery import discovery_metadata_async
from servicegrid.errors import ServiceError
from servicegrid.gateway.routes import orchestrator_of, settings_of
from servicegrid.gateway.routes.documents import read_pdf
from servicegrid.retrieval.models import OrchestrationRequest, OrchestrationResponse

__all__ = ["USER_ID_PATTERN", "orchestrate_router"]

USER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
UseGrpc = Annotated[bool, Query(description="Reach seed 002's services over gRPC")]
_DISCOVERED = ("users", "questions", "api-gateway", "embedding", "reranking", "documents")


def orchestrate_router() -> APIRouter:
    """The ``/orchestrate`` routes; failures are raised as ServiceErrors for the handlers."""
    router = APIRouter(tags=["orchestrator"])

    @router.post("/orchestrate/query", summary="Answer a user's question, with citations")
    async def query(body: OrchestrationRequest, request: Request) -> OrchestrationResponse:
        return await orchestrator_of(request).orchestrate_user_query(body)

    @router.post(
        "/orchestrate/index-questions/{user_id}",
        summary="Index a user's questions (idempotent); the change feed keeps them in step",
    )
    async def index_questions(
        request: Request,
        user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)],
        use_grpc: UseGrpc = False,
    ) -> dict[str, Any]:
        done = await orchestrator_of(request).index_user_questions(user_id, use_grpc=use_grpc)
        return {"user_id": user_id, **done.to_json()}

    @router.post(
        "/orchestrate/index-documents",
        summary="Convert a PDF through the document service and index it, page by page",
    )
    async def index_documents(
        request: Request,
        file: Annotated[UploadFile | None, File(description="The PDF")] = None,
        user_id: Annotated[
            str | None,
            Form(pattern=USER_ID_PATTERN, description="Only this user sees it; default: all"),
        ] = None,
    ) -> dict[str, Any]:
        pdf, filename = await read_pdf(file, max_mb=settings_of(request).documents_max_mb)
        done = await orchestrator_of(request).index_document(filename, pdf, user_id=user_id)
        return {"file_name": filename, "user_id": user_id, **done.to_json()}

    @router.get("/orchestrate/health", summary="Every service a query uses, probed now")
    async def health(request: Request, use_grpc: UseGrpc = False) -> dict[str, Any]:
        return await orchestrator_of(request).health(use_grpc=use_grpc)

    @router.get("/orchestrate/services/discover", summary="Where discovery finds each service")
    async def discover() -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in _DISCOVERED:
            spec = catalogue.lookup(name)
            protocols: tuple[WireProtocol, ...] = (
                ("http", "grpc") if spec.grpc_port is not None else (spec.protocol,)
            )
            for protocol in protocols:
                key = spec.discovery_name + (
                    "-grpc" if protocol == "grpc" and not spec.is_grpc else ""
                )
                try:
                    found[key] = await discovery_metadata_async(spec.discovery_name, protocol)
                except ServiceError as error:
                    found[key] = {"error": f"{type(error).__name__}: {error.message}"}
        return {"services": found}

    return router
