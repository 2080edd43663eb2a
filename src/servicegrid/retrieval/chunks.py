"""What the index holds and returns: chunks of questions and documents, and scored hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TAGS_PREFIX", "Chunk", "Hit", "Source", "SparseVector"]

Source = Literal["question", "document"]

TAGS_PREFIX = "Tags: "
"""Starts the line of a question chunk that lists its tags: searched, never quoted."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of text as the index holds it.

    ``id`` is stable for the same piece (``question:q-001:0``, ``document:<digest>:3:1``):
    indexing it again replaces it. ``ref`` is what a citation names: the question's id,
    or the document's file name. ``page`` is a document chunk's page (1-based).
    ``user_id`` owns a question chunk, or a document uploaded for one user; None:
    visible to every user.
    """

    id: str
    source: Source
    ref: str
    text: str
    title: str = ""
    page: int | None = None
    user_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def quotable(self, sentence: str) -> bool:
        """Whether ``sentence`` of :attr:`text` is prose an answer may quote (not its tags)."""
        return not (self.extra.get("tags") and sentence.startswith(TAGS_PREFIX))


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Term ids and their weights, as Qdrant's sparse vectors take them (ids unique)."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk a search found, with its score (higher is better; only the order means much)."""

    chunk: Chunk
    score: float
