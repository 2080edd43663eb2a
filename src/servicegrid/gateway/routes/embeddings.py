"""OpenAI ``POST /v1/embeddings`` and ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from servicegrid.errors import ValidationError
from servicegrid.gateway.encoding import VectorJSONResponse, as_base64, as_float32
from servicegrid.gateway.routes import (
    capped_texts,
    catalogue_of,
    clients_of,
    coalescer_of,
    settings_of,
)
from servicegrid.gateway.schemas import EmbeddingsAnswer, EmbeddingsRequest
from servicegrid.proto import embedding_service_pb2

__all__ = ["embeddings_router"]


def embeddings_router() -> APIRouter:
    """The OpenAI routes for embeddings and the model list."""
    router = APIRouter(tags=["openai"])

    @router.post(
        "/v1/embeddings",
        summary="OpenAI-compatible embeddings",
        response_class=VectorJSONResponse,
        responses={200: {"model": EmbeddingsAnswer}},
    )
    async def create_embeddings(body: EmbeddingsRequest, request: Request) -> VectorJSONResponse:
        texts = capped_texts(request, "input", body.input)
        model = await catalogue_of(request).resolve_embedding(body.model)
        if body.dimensions is not None and body.dimensions != model.dimension:
            raise ValidationError.for_field(
                "dimensions", f"{model.name} gives {model.dimension} dimensions only"
            )
        response = await coalescer_of(request).embed(
            texts, model.name, embedding_service_pb2.EmbeddingConfig(normalize=True)
        )
        encode = as_base64 if body.encoding_format == "base64" else as_float32
        data = [
            {"object": "embedding", "index": index, "embedding": encode(result.values)}
            for index, result in enumerate(response.embeddings)
        ]
        tokens = sum(result.token_count for result in response.embeddings)
        return VectorJSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @router.get("/v1/models", summary="The served models and what each can do")
    async def list_models(request: Request) -> dict[str, Any]:
        capabilities: dict[str, list[str]] = {}
        for capability, models in (await catalogue_of(request).listing()).items():
            for model in models:
                capabilities.setdefault(model.name, []).append(capability)
        settings = settings_of(request)
        if clients_of(request).llm is not None and settings.llm_model:
            capabilities.setdefault(settings.llm_model, []).append("chat")
        created = int(request.app.state.started)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "servicegrid",
                    "capabilities": can,
                }
                for name, can in capabilities.items()
            ],
        }

    return router
