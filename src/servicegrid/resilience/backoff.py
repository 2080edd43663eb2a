"""How long to wait before retry ``n``: small frozen policies with a pure ``delay``.

Formulas (``attempt`` is the number of the attempt that just failed, from 1):

* base = min(max, initial * factor ** (attempt - 1))
* ``Jitter.NONE``  → base
* ``Jitter.FULL``  → uniform(0, base)                  ("Full Jitter", AWS Architecture Blog, 2015)
* ``Jitter.EQUAL`` → base / 2 + uniform(0, base / 2)   ("Equal Jitter", same source)
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Protocol

from servicegrid._validate import check_number

__all__ = ["Backoff", "ConstantBackoff", "ExponentialBackoff", "Jitter", "LinearBackoff"]


class Jitter(enum.Enum):
    """Randomisation applied to a backoff delay."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"


class Backoff(Protocol):
    """Seconds to wait after failed attempt ``attempt`` (1-based)."""

    def delay(self, attempt: int, rng: random.Random) -> float: ...


def _jittered(base: float, jitter: Jitter, rng: random.Random) -> float:
    if jitter is Jitter.FULL:
        return rng.uniform(0.0, base)
    if jitter is Jitter.EQUAL:
        return base / 2 + rng.uniform(0.0, base / 2)
    return base


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """Delay min(max, initial * factor**(n-1)), then jittered; never above ``max``."""

    initial: float = 0.1
    max: float = 5.0
    factor: float = 2.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        check_number("initial", self.initial)
        check_number("max", self.max)
        check_number("factor", self.factor, minimum=1.0)
        if self.max < self.initial:
            raise ValueError(f"max ({self.max}) must be >= initial ({self.initial})")

    def delay(self, attempt: int, rng: random.Random) -> float:
        try:
            base = self.initial * self.factor ** max(attempt - 1, 0)
        except OverflowError:
            base = self.max if self.initial > 0 else 0.0
        return _jittered(min(base, self.max), self.jitter, rng)


@dataclass(frozen=True, slots=True)
class LinearBackoff:
    """Delay min(max, initial * n), then jittered (seed 000's LINEAR strategy)."""

    initial: float = 1.0
    max: float = 60.0
    jitter: Jitter = Jitter.NONE

    def __post_init__(self) -> None:
        check_number("initial", self.initial)
        check_number("max", self.max)

    def delay(self, attempt: int, rng: random.Random) -> float:
        return _jittered(min(self.initial * max(attempt, 1), self.max), self.jitter, rng)


@dataclass(frozen=True, slots=True)
class ConstantBackoff:
    """The same delay every time (seed 000's FIXED strategy)."""

    seconds: float = 1.0
    jitter: Jitter = Jitter.NONE

    def __post_init__(self) -> None:
        check_number("seconds", self.seconds)

    def delay(self, attempt: int, rng: random.Random) -> float:
        return _jittered(self.seconds, self.jitter, rng)
