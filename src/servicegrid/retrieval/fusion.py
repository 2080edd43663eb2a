"""Reciprocal rank fusion: one ranking out of several (dense, BM25) without comparing scores."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["reciprocal_rank_fusion"]


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
    if weights is None:
        weights = [1.0] * len(rankings)
    elif len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
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
