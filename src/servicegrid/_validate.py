"""Argument checks shared by every constructor: one wording for one kind of mistake."""

from __future__ import annotations

import math

__all__ = ["check_count", "check_number"]


def check_number(
    name: str, value: object, *, minimum: float = 0.0, inclusive: bool = True
) -> float:
    """``value`` as a float if it is a finite real number >= ``minimum`` (> when not inclusive).

    Raises ValueError naming ``name`` otherwise; ``True``/``False`` are not numbers here.
    """
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum)
    ):
        return float(value)
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``; raises ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
