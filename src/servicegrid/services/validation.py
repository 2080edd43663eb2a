"""Request checks shared by the model services: every failure names the field it is about."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from servicegrid.errors import ValidationError

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "check_positive_float",
    "check_positive_int",
    "check_texts",
    "invalid",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask for."""

    max_items: int = 2_048
    max_text_chars: int = 100_000
    default_batch_size: int = 32


DEFAULT_LIMITS = Limits()


def invalid(field: str, problem: str) -> ValidationError:
    """INVALID_ARGUMENT for ``field``; the message starts with the field's path."""
    return ValidationError.for_field(field, problem)


def check_texts(field: str, texts: Sequence[str], *, max_items: int, max_chars: int) -> None:
    """A non-empty list of non-empty texts, within the item and length limits."""
    if not texts:
        raise invalid(field, "must hold at least one text")
    if len(texts) > max_items:
        raise invalid(field, f"holds {len(texts)} texts; at most {max_items} per request")
    for index, text in enumerate(texts):
        if not text.strip():
            raise invalid(f"{field}[{index}]", "must not be empty or blank")
        if len(text) > max_chars:
            raise invalid(
                f"{field}[{index}]", f"is {len(text)} characters long; at most {max_chars}"
            )


def check_positive_int(field: str, value: int) -> int:
    if value <= 0:
        raise invalid(field, f"must be > 0 when given, got {value}")
    return value


def check_positive_float(field: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise invalid(field, f"must be a finite number > 0 when given, got {value}")
    return value
