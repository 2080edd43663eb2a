"""``embedding.generate``: embed texts with the embedding service, one vector per text."""

from __future__ import annotations

from typing import Any

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.factory import create_embedding_client
from servicegrid.integration.native.action import (
    STRINGS,
    ClientSource,
    NativeAction,
    object_schema,
)
from servicegrid.proto import embedding_service_pb2

__all__ = ["EMBEDDING_GENERATE"]


async def _generate(
    clients: ClientSource, data: dict[str, Any], per_attempt: float | None
) -> dict[str, Any]:
    client = clients.client("embedding", EmbeddingClient, create_embedding_client)
    config = (
        embedding_service_pb2.EmbeddingConfig(normalize=data["normalize"])
        if "normalize" in data
        else None
    )
    response = await client.generate_embeddings(
        data["texts"], data.get("model_name", ""), config, timeout=per_attempt
    )
    embeddings = [list(e.values) for e in response.embeddings]
    return {
        "embeddings": embeddings,
        "model": response.metadata.model_name,
        "dimensions": response.embeddings[0].dimension if response.embeddings else 0,
    }


EMBEDDING_GENERATE = NativeAction(
    service="embedding",
    action="generate",
    description="Embed texts with the embedding service; one vector per text, in order.",
    input_schema=object_schema(
        {
            "texts": {**STRINGS, "minItems": 1, "description": "The texts to embed."},
            "model_name": {
                "type": "string",
                "description": "The model to use; absent or empty: the service's default.",
            },
            "normalize": {
                "type": "boolean",
                "default": False,
                "description": "Scale every vector to unit length.",
            },
        },
        ["texts"],
        closed=True,
    ),
    output_schema=object_schema(
        {
            "embeddings": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
            },
            "model": {"type": "string", "description": "The model that ran."},
            "dimensions": {"type": "integer", "description": "The length of each vector."},
        },
        ["embeddings", "model", "dimensions"],
        closed=False,
    ),
    handler=_generate,
)
