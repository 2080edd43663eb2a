"""BM25 term weights as Qdrant sparse vectors, for a sparse vector with the IDF modifier."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from servicegrid.retrieval.chunks import SparseVector
from servicegrid.retrieval.text import tokenise

__all__ = ["Bm25Encoder", "term_id"]


def term_id(token: str) -> int:
    """The token's stable 32-bit id: blake2b(UTF-8 token, digest_size=4), big-endian unsigned."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _merged(weights: dict[str, float]) -> SparseVector:
    """Weights by term id, ids ascending; terms whose ids collide add up."""
    by_id: dict[int, float] = {}
    for token, weight in weights.items():
        index = term_id(token)
        by_id[index] = by_id.get(index, 0.0) + weight
    indices = sorted(by_id)
    return SparseVector(indices=indices, values=[by_id[i] for i in indices])


@dataclass(frozen=True, slots=True)
class Bm25Encoder:
    """The term-frequency half of Okapi BM25 (Robertson & Zaragoza, 2009).

    A document term weighs ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / average_length))``,
    ``tf`` its count in the document and ``len`` the document's token count (see
    :func:`~servicegrid.retrieval.text.tokenise`). A query term weighs 1.0.

    The IDF half is left out on purpose: the collection's sparse vector uses
    ``Modifier.IDF``, so Qdrant multiplies each query term by
    ``ln(1 + (N - df + 0.5) / (df + 0.5))`` from its own live counts at query time. Stored
    weights then never go stale as chunks come and go, and no corpus statistics need
    keeping here. ``average_length`` is a fixed estimate in words (chunks are bounded),
    not measured.
    """

    k1: float = 1.2
    b: float = 0.75
    average_length: float = 60.0

    def __post_init__(self) -> None:
        if self.k1 < 0:
            raise ValueError(f"k1 must be >= 0, got {self.k1}")
        if not 0 <= self.b <= 1:
            raise ValueError(f"b must be within [0, 1], got {self.b}")
        if self.average_length <= 0:
            raise ValueError(f"average_length must be > 0, got {self.average_length}")

    def document(self, text: str) -> SparseVector:
        """The stored vector of a chunk's text; empty for text without tokens."""
        tokens = tokenise(text)
        norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.average_length)
        return _merged(
            {term: tf * (self.k1 + 1) / (tf + norm) for term, tf in Counter(tokens).items()}
        )

    def query(self, text: str) -> SparseVector:
        """The query vector: 1.0 per distinct term."""
        return _merged(dict.fromkeys(tokenise(text), 1.0))
