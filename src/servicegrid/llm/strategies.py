"""Load-balancing strategies: which of the eligible hosts gets the next attempt.

Each picker is a pure function of the candidates and an injected
``random.Random``, or a small class when it must remember where it was (round
robin). Candidates are the hosts that may take a call now (enabled, breaker
admitting, below ``max_concurrent``, not yet tried for this request), in the
configured order.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = [
    "Candidate",
    "LeastLoaded",
    "LoadBalancingStrategy",
    "Picker",
    "RoundRobin",
    "pick_power_of_two",
    "pick_random",
    "pick_weighted_random",
    "picker_for",
]

# A host with no latency sample yet still has its load counted against it.
_LATENCY_FLOOR = 1e-3


class LoadBalancingStrategy(enum.Enum):
    """How the client spreads requests over its hosts (seed 004, plus power of two choices)."""

    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    LEAST_LOADED = "least_loaded"
    WEIGHTED_RANDOM = "weighted_random"
    POWER_OF_TWO_CHOICES = "power_of_two_choices"


class Candidate(Protocol):
    """What a picker may read of a host."""

    @property
    def position(self) -> int:
        """The host's place in the configured order."""
        ...

    @property
    def weight(self) -> float: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def latency(self) -> float:
        """The latency estimate in seconds (see :class:`~servicegrid.llm.latency.LatencyEwma`)."""
        ...


C = TypeVar("C", bound=Candidate)


class Picker(Protocol):
    def __call__(self, candidates: Sequence[C], rng: random.Random) -> C:
        """One of ``candidates`` (never empty)."""
        ...


class RoundRobin:
    """Each host in turn: the first candidate at or after the one after the last pick.

    Skipping ineligible hosts keeps the turn order of the rest.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, candidates: Sequence[C], rng: random.Random) -> C:
        chosen = next((c for c in candidates if c.position >= self._next), candidates[0])
        self._next = chosen.position + 1
        return chosen


class LeastLoaded:
    """The candidate with the fewest calls in flight; ties go round robin."""

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns = RoundRobin()

    def __call__(self, candidates: Sequence[C], rng: random.Random) -> C:
        fewest = min(c.in_flight for c in candidates)
        return self._turns([c for c in candidates if c.in_flight == fewest], rng)


def pick_random(candidates: Sequence[C], rng: random.Random) -> C:
    """Any candidate, uniformly."""
    return candidates[rng.randrange(len(candidates))]


def pick_weighted_random(candidates: Sequence[C], rng: random.Random) -> C:
    """A candidate with probability ``weight / sum(weights)``."""
    point = rng.random() * sum(c.weight for c in candidates)
    for candidate in candidates:
        point -= candidate.weight
        if point < 0:
            return candidate
    return candidates[-1]  # rounding left a sliver at the end


def pick_power_of_two(candidates: Sequence[C], rng: random.Random) -> C:
    """Of two distinct candidates drawn at random, the one with the lower
    ``max(latency, 1 ms) * (in_flight + 1)``; the first drawn on a tie."""
    if len(candidates) == 1:
        return candidates[0]
    first, second = rng.sample(range(len(candidates)), 2)
    a, b = candidates[first], candidates[second]
    return b if _cost(b) < _cost(a) else a


def _cost(candidate: Candidate) -> float:
    return max(candidate.latency, _LATENCY_FLOOR) * (candidate.in_flight + 1)


def picker_for(strategy: LoadBalancingStrategy) -> Picker:
    """A fresh picker for ``strategy``."""
    if strategy is LoadBalancingStrategy.ROUND_ROBIN:
        return RoundRobin()
    if strategy is LoadBalancingStrategy.LEAST_LOADED:
        return LeastLoaded()
    if strategy is LoadBalancingStrategy.RANDOM:
        return pick_random
    if strategy is LoadBalancingStrategy.WEIGHTED_RANDOM:
        return pick_weighted_random
    if strategy is LoadBalancingStrategy.POWER_OF_TWO_CHOICES:
        return pick_power_of_two
    raise ValueError(f"unknown load-balancing strategy {strategy!r}")
