"""How slow a host looks: a latency EWMA that counts failures as slow and fades when unheard."""

from __future__ import annotations

import math
from dataclasses import dataclass

from servicegrid._validate import check_number

__all__ = ["LatencyEwma"]


@dataclass(frozen=True, slots=True)
class LatencyEwma:
    """The latency estimate per host that POWER_OF_TWO_CHOICES ranks by; all values in seconds.

    A sample ``s`` taken ``age`` seconds after the previous one gives
    ``alpha * s + (1 - alpha) * faded``, where ``faded = ewma * exp(-age / fade)``:
    an estimate fades toward 0 while the host is not heard from, so a host once
    slow is tried again later (Finagle's PeakEwma decays its cost the same way).
    The first sample is taken as it is. A failure counts as the sample
    ``max(failure_penalty, failure_factor * faded)``, so a host that fails fast
    never looks fast.
    """

    alpha: float = 0.3
    fade: float = 10.0
    failure_penalty: float = 1.0
    failure_factor: float = 5.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_number(f"{owner}.alpha", self.alpha, inclusive=False)
        if self.alpha > 1:
            raise ValueError(f"{owner}.alpha must be in (0, 1], got {self.alpha!r}")
        check_number(f"{owner}.fade", self.fade, inclusive=False)
        check_number(f"{owner}.failure_penalty", self.failure_penalty)
        check_number(f"{owner}.failure_factor", self.failure_factor, minimum=1.0)

    def faded(self, ewma: float | None, age: float) -> float:
        """The estimate ``age`` seconds after its last sample (0.0 before any sample)."""
        if ewma is None:
            return 0.0
        return ewma * math.exp(-max(age, 0.0) / self.fade)

    def observe(self, ewma: float | None, age: float, sample: float) -> float:
        """The estimate after ``sample``, taken ``age`` seconds after the previous one."""
        if ewma is None:
            return sample
        return self.alpha * sample + (1.0 - self.alpha) * self.faded(ewma, age)

    def penalty(self, ewma: float | None, age: float) -> float:
        """The sample a failure counts as."""
        return max(self.failure_penalty, self.failure_factor * self.faded(ewma, age))
