"""How fast the model works, by text length: the figure admission control plans with.

Forward passes are timed per batch and filed by the length of the batch's widest
item, in powers of two (1, 2-3, 4-7, ... tokens), as wall-clock seconds per
token of the whole engine: a pass's seconds divided by the forward workers.
Attention grows with the square of the length, so a token of a 256-token text
costs more than one of a 16-token text, and each length class keeps its own
figure.

Admission needs the engine's speed under load, so a figure is representative
only when it comes from a full batch (a GPU runs 32 items in about the time it
runs one) that ran while every forward worker was busy (two workers on two
cores, or on two hyperthreads of one, each run slower than one alone). Such a
figure replaces any other, and the others only ever stand in until one has
been seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from servicegrid._validate import check_count

__all__ = ["SMOOTHING", "ThroughputEstimate", "by_class", "length_class"]

SMOOTHING = 0.2
"""Weight of the newest batch in each length class's moving average."""


def length_class(tokens: int) -> int:
    """The power-of-two class of a text ``tokens`` long: 1 -> 1, 2-3 -> 2, 4-7 -> 3, ..."""
    return max(tokens, 1).bit_length()


def by_class(costs: Iterable[int]) -> Counter[int]:
    """Tokens by :func:`length_class`."""
    tokens: Counter[int] = Counter()
    for cost in costs:
        tokens[length_class(cost)] += cost
    return tokens


@dataclass(slots=True)
class _Figure:
    seconds_per_token: float
    full: bool


class ThroughputEstimate:
    """Seconds of engine time per token, by length class; read and written on one thread."""

    def __init__(self, *, forward_workers: int = 1, max_items: int, max_tokens: int) -> None:
        self.forward_workers = check_count("forward_workers", forward_workers)
        self.max_items = check_count("max_items", max_items)
        self.max_tokens = check_count("max_tokens", max_tokens)
        self._figures: dict[int, _Figure] = {}

    def __bool__(self) -> bool:
        """True once any batch has been measured."""
        return bool(self._figures)

    def record(
        self, *, widest: int, items: int, tokens: int, seconds: float, side_by_side: int = 1
    ) -> None:
        """File one forward pass: ``items`` items, ``tokens`` in all, the widest ``widest`` long.

        ``side_by_side`` is how many passes were running as it ended, this one included.
        """
        if items <= 0 or seconds < 0:
            return
        per_token = seconds / max(tokens, 1) / self.forward_workers
        full_batch = 2 * items >= self.max_items or 2 * items * widest >= self.max_tokens
        full = full_batch and side_by_side >= self.forward_workers
        key = length_class(widest)
        known = self._figures.get(key)
        if known is None or (full and not known.full):
            self._figures[key] = _Figure(per_token, full)
        elif full or not known.full:
            known.seconds_per_token += SMOOTHING * (per_token - known.seconds_per_token)

    def seconds_per_token(self, tokens: int) -> float | None:
        """The figure for texts ``tokens`` long, or None before any batch was measured.

        An unmeasured class borrows from the nearest measured longer one (a
        longer text's tokens cost at least as much), else the nearest shorter.
        """
        if not self._figures:
            return None
        key = length_class(tokens)
        known = self._figures.get(key)
        if known is not None:
            return known.seconds_per_token
        longer = [k for k in self._figures if k > key]
        nearest = min(longer) if longer else max(self._figures)
        return self._figures[nearest].seconds_per_token

    def seconds(self, tokens_by_class: Mapping[int, int]) -> float:
        """Engine seconds to run ``tokens_by_class`` (length class -> tokens); 0.0 when unknown."""
        total = 0.0
        for key, tokens in tokens_by_class.items():
            if tokens > 0:
                per_token = self.seconds_per_token(1 << (key - 1))
                if per_token is None:
                    return 0.0
                total += tokens * per_token
        return total

    def tokens_per_second(self, tokens: int) -> float:
        """Throughput on texts ``tokens`` long (0.0 before any batch was measured)."""
        per_token = self.seconds_per_token(tokens)
        return 1.0 / per_token if per_token else 0.0
