"""``reranking.rerank``: score documents against a query with the reranking service."""

from __future__ import annotations

from typing import Any

from servicegrid.clients.factory import create_reranking_client
from servicegrid.clients.reranking import RerankingClient
from servicegrid.integration.native.action import (
    STRINGS,
    ClientSource,
    NativeAction,
    object_schema,
)
from servicegrid.proto import reranking_service_pb2

__all__ = ["RERANKING_RERANK"]


async def _rerank(
    clients: ClientSource, data: dict[str, Any], per_attempt: float | None
) -> dict[str, Any]:
    model_name: str = data.get("model_name", "")
    if not data["documents"]:
        return {"results": [], "model": model_name}
    client = clients.client("reranking", RerankingClient, create_reranking_client)
    with_documents: bool = data.get("return_documents", True)
    config = reranking_service_pb2.RerankingConfig(
        model_name=model_name, return_documents=with_documents
    )
    response = await client.rerank_batch(
        data["query"], data["documents"], config, timeout=per_attempt
    )
    ranked = list(response.results)
    if "top_k" in data:
        ranked = ranked[: int(data["top_k"])]
    results: list[dict[str, Any]] = []
    for result in ranked:
        item: dict[str, Any] = {"index": result.document_index, "score": result.score}
        if with_documents:
            item["document"] = result.document
        results.append(item)
    return {"results": results, "model": response.metadata.model_name}


RERANKING_RERANK = NativeAction(
    service="reranking",
    action="rerank",
    description=(
        "Score documents against a query with the reranking service; results come highest "
        "score first. No documents give no results, without a call."
    ),
    input_schema=object_schema(
        {
            "query": {"type": "string", "minLength": 1},
            "documents": {**STRINGS, "description": "The documents to score."},
            "model_name": {
                "type": "string",
                "description": "The model to use; absent or empty: the service's default.",
            },
            "top_k": {"type": "integer", "minimum": 1, "description": "Keep the best k only."},
            "return_documents": {
                "type": "boolean",
                "default": True,
                "description": "Put each document's text in its result.",
            },
        },
        ["query", "documents"],
        closed=True,
    ),
    output_schema=object_schema(
        {
            "results": {
                "type": "array",
                "items": object_schema(
                    {
                        "index": {"type": "integer", "description": "Position in documents."},
                        "score": {"type": "number"},
                        "document": {"type": "string"},
                    },
                    ["index", "score"],
                    closed=False,
                    root=False,
                ),
            },
            "model": {
                "type": "string",
                "description": "The model that ran; the model asked for (or empty) when no "
                "documents were given.",
            },
        },
        ["results", "model"],
        closed=False,
    ),
    handler=_rerank,
)
