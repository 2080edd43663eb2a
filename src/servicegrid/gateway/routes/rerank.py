"""Cohere/Jina ``POST /v1/rerank``.

``return_documents`` defaults to false, as in Cohere's API (Jina's defaults to
true: Jina users send it). The service reports no token counts, so the answer
bills search units (one per 100 documents) in ``meta`` and has no ``usage``.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from fastapi import APIRouter, Request

from servicegrid.errors import ValidationError
from servicegrid.gateway.routes import capped_texts, catalogue_of, clients_of, settings_of
from servicegrid.gateway.schemas import RerankRequest, check_text
from servicegrid.proto import reranking_service_pb2

__all__ = ["rerank_router", "scored"]


async def scored(
    request: Request, model_name: str | None, query: str, documents: list[str], field: str
) -> tuple[str, list[tuple[int, float]]]:
    """``(model, [(document index, score), ...])``, highest score first, after the caps."""
    settings = settings_of(request)
    if not query.strip():
        raise ValidationError.for_field("query", "must not be empty")
    check_text("query", query, max_chars=settings.max_text_chars)
    capped_texts(request, field, documents)
    model = await catalogue_of(request).resolve_reranking(model_name)
    response = await clients_of(request).reranking.rerank_batch(
        query, documents, reranking_service_pb2.RerankingConfig(model_name=model.name)
    )
    ranked = sorted(
        ((result.document_index, result.score) for result in response.results),
        key=lambda pair: pair[1],
        reverse=True,
    )
    return model.name, ranked


def rerank_router() -> APIRouter:
    """The Cohere/Jina rerank route."""
    router = APIRouter(tags=["rerank"])

    @router.post("/v1/rerank", summary="Cohere/Jina-compatible reranking")
    async def rerank(body: RerankRequest, request: Request) -> dict[str, Any]:
        texts = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
        model, ranked = await scored(request, body.model, body.query, texts, "documents")
        if body.top_n is not None:
            ranked = ranked[: body.top_n]
        results: list[dict[str, Any]] = []
        for index, score in ranked:
            result: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.return_documents:
                result["document"] = {"text": texts[index]}
            results.append(result)
        return {
            "id": str(uuid.uuid4()),
            "model": model,
            "results": results,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"search_units": math.ceil(len(texts) / 100)},
            },
        }

    return router
