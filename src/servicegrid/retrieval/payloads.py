"""How chunks and search scopes are written for Qdrant: payloads and filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from servicegrid.retrieval.chunks import Chunk, Source

__all__ = ["Scope", "chunk_of", "match", "payload_of", "scope_filter"]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which chunks a search may return.

    A question chunk matches only when its ``user_id`` equals ``user_id``; a document chunk
    when its ``user_id`` is None (shared) or equals ``user_id``.
    """

    sources: frozenset[Source] = frozenset(("question", "document"))
    user_id: str | None = None


def match(key: str, value: str) -> models.FieldCondition:
    """Payload ``key`` equals ``value``."""
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _owned_by(user_id: str | None) -> models.Condition:
    if user_id is None:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key="user_id"))
    return match("user_id", user_id)


def scope_filter(scope: Scope) -> models.Filter:
    """The filter of the chunks ``scope`` lets a search return."""
    branches: list[models.Condition] = []
    if "question" in scope.sources:
        branches.append(models.Filter(must=[match("source", "question"), _owned_by(scope.user_id)]))
    if "document" in scope.sources:
        visible: list[models.Condition] = [_owned_by(None)]
        if scope.user_id is not None:
            visible.append(_owned_by(scope.user_id))
        branches.append(
            models.Filter(must=[match("source", "document"), models.Filter(should=visible)])
        )
    return models.Filter(should=branches)


def payload_of(chunk: Chunk, *, has_dense: bool) -> dict[str, Any]:
    """A chunk's point payload; ``has_dense`` says whether the point has its dense vector."""
    return {
        "chunk_id": chunk.id,
        "source": chunk.source,
        "ref": chunk.ref,
        "text": chunk.text,
        "title": chunk.title,
        "page": chunk.page,
        "user_id": chunk.user_id,
        "extra": chunk.extra,
        "has_dense": has_dense,
    }


def chunk_of(payload: dict[str, Any]) -> Chunk:
    """The chunk a point's payload holds."""
    return Chunk(
        id=payload["chunk_id"],
        source=payload["source"],
        ref=payload["ref"],
        text=payload["text"],
        title=payload.get("title", ""),
        page=payload.get("page"),
        user_id=payload.get("user_id"),
        extra=payload.get("extra") or {},
    )
