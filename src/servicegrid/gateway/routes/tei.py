"""Hugging Face TEI's ``POST /embed`` and ``POST /rerank``, in TEI's shapes.

Scores are the reranking service's own (``raw_scores`` is accepted and does not
change them). Without ``truncate``, a text longer than the model reads is
refused (422), as TEI does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from servicegrid.errors import ValidationError
from servicegrid.gateway.encoding import VectorJSONResponse, as_float32
from servicegrid.gateway.routes import capped_texts, catalogue_of, coalescer_of
from servicegrid.gateway.routes.rerank import scored
from servicegrid.gateway.schemas import TeiEmbedRequest, TeiRerankRequest
from servicegrid.proto import embedding_service_pb2

__all__ = ["tei_router"]


def tei_router() -> APIRouter:
    """TEI's embed and rerank routes."""
    router = APIRouter(tags=["tei"])

    @router.post(
        "/embed",
        summary="TEI-compatible embeddings",
        response_class=VectorJSONResponse,
        responses={200: {"model": list[list[float]]}},
    )
    async def embed(body: TeiEmbedRequest, request: Request) -> VectorJSONResponse:
        texts = capped_texts(request, "inputs", body.inputs)
        model = await catalogue_of(request).resolve_embedding(body.model)
        response = await coalescer_of(request).embed(
            texts, model.name, embedding_service_pb2.EmbeddingConfig(normalize=body.normalize)
        )
        if not body.truncate:
            for index, result in enumerate(response.embeddings):
                if result.truncated:
                    raise ValidationError.for_field(
                        "inputs",
                        f"item {index} is longer than {model.name} reads; "
                        "send truncate=true to cut it",
                    )
        return VectorJSONResponse([as_float32(result.values) for result in response.embeddings])

    @router.post("/rerank", summary="TEI-compatible reranking")
    async def rerank(body: TeiRerankRequest, request: Request) -> list[dict[str, Any]]:
        _, ranked = await scored(request, body.model, body.query, body.texts, "texts")
        answer: list[dict[str, Any]] = []
        for index, score in ranked:
            item: dict[str, Any] = {"index": index, "score": score}
            if body.return_text:
                item["text"] = body.texts[index]
            answer.append(item)
        return answer

    return router
