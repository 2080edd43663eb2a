"""Fusing rankings (BM25, dense) into one: by rank (RRF) or by normalised score.

:func:`reciprocal_rank_fusion` reads only ranks, so it needs no calibration
between retrievers whose scores live on different scales; it is the default.
:func:`relative_score_fusion` min-max normalises each ranking's scores to 0..1
and adds them by weight, so a retriever that is far more confident about its
first hit than its tenth says so. :class:`Fusion` picks one for the retriever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_FUSION",
    "Fusion",
    "FusionMethod",
    "reciprocal_rank_fusion",
    "relative_score_fusion",
]

FusionMethod = Literal["rrf", "relative"]


@dataclass(frozen=True, slots=True)
class Fusion:
    """How :class:`~servicegrid.retrieval.retriever.HybridRetriever` fuses BM25 and dense.

    ``method``: ``"rrf"`` (reciprocal rank fusion, ``k`` as its constant) or
    ``"relative"`` (min-max normalised scores). ``dense_weight`` is the dense
    ranking's weight against BM25's 1.0 in either.
    """

    method: FusionMethod = "rrf"
    dense_weight: float = 1.0
    k: float = 60

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "relative"):
            raise ValueError(f"method must be 'rrf' or 'relative', got {self.method!r}")
        if not self.dense_weight > 0:
            raise ValueError(f"dense_weight must be > 0, got {self.dense_weight}")
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")

    def fuse(
        self, bm25: Sequence[tuple[str, float]], dense: Sequence[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        """The two scored rankings (best first) as one, with the fused score."""
        weights = (1.0, self.dense_weight)
        if self.method == "relative":
            return relative_score_fusion([bm25, dense], weights=weights)
        ids = [[doc for doc, _ in bm25], [doc for doc, _ in dense]]
        return reciprocal_rank_fusion(ids, k=self.k, weights=weights)


DEFAULT_FUSION = Fusion()
"""Reciprocal rank fusion, k = 60, equal weights."""


def _weights(weights: Sequence[float] | None, count: int) -> Sequence[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} rankings")
    return weights


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    *,
    k: float = 60,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse rankings of ids, best first, by ``score(d) = sum_i weights[i] / (k + rank_i(d))``.

    ``rank_i`` is 1-based; a ranking that lacks ``d`` adds nothing, and an id repeated in one
    ranking counts at its best rank. Ties keep the order ids were first seen in. ``weights``
    default to 1.0 each. From Cormack, Clarke & Büttcher (2009), "Reciprocal Rank Fusion
    outperforms Condorcet and individual Rank Learning Methods", SIGIR '09; k=60 is theirs.
    Raises ValueError for a negative ``k`` or a ``weights`` of another length.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    weights = _weights(weights, len(rankings))
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        seen: set[str] = set()
        for rank, doc in enumerate(ranking, start=1):
            if doc in seen:
                continue
            seen.add(doc)
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
    # sorted() is stable, so equal scores stay in first-seen (insertion) order
    return sorted(scores.items(), key=lambda item: -item[1])


def relative_score_fusion(
    rankings: Sequence[Sequence[tuple[str, float]]],
    *,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse scored rankings by ``score(d) = sum_i weights[i] * norm_i(d)``, best first.

    ``norm_i`` maps ranking ``i``'s scores linearly onto 0..1 (its best hit 1, its worst 0;
    every hit 1 when all scores are equal); a ranking that lacks ``d`` adds 0, and a repeated
    id counts at its best score. The scheme of Weaviate's ``relativeScoreFusion``. Ties keep
    first-seen order. Raises ValueError for a ``weights`` of another length.
    """
    weights = _weights(weights, len(rankings))
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        best: dict[str, float] = {}
        for doc, score in ranking:
            best[doc] = max(score, best.get(doc, score))
        if not best:
            continue
        low, high = min(best.values()), max(best.values())
        for doc, score in best.items():
            norm = (score - low) / (high - low) if high > low else 1.0
            scores[doc] = scores.get(doc, 0.0) + weight * norm
    return sorted(scores.items(), key=lambda item: -item[1])
