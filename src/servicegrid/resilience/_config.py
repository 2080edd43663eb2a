"""Process-wide resilience switches, behind one lock (see ``servicegrid.testing``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["CONFIG", "ResilienceConfig"]


@dataclass(slots=True)
class ResilienceConfig:
    """``testing``: zero backoff, at most ``attempts`` attempts; ``active``: retries on at all."""

    active: bool = True
    testing: bool = False
    attempts: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def max_attempts(self, configured: int) -> int:
        if not self.active:
            return 1
        if self.testing:
            return min(configured, self.attempts) if self.attempts > 0 else configured
        return configured


CONFIG = ResilienceConfig()
