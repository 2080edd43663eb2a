"""The hypothesis settings every schemathesis test here runs with: reproducible, no deadline."""

from __future__ import annotations

import hypothesis
from hypothesis import HealthCheck

__all__ = ["fuzz_settings"]


def fuzz_settings(max_examples: int) -> hypothesis.settings:
    """``max_examples`` per operation, derandomized, without a deadline or an example database."""
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
