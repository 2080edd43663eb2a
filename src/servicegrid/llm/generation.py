"""Seed 004's ``LLMRequest`` and ``LLMResponse``: one generation asked for, and its answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servicegrid.errors import ValidationError

__all__ = ["LLMRequest", "LLMResponse", "total_tokens"]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One generation: ``prompt`` (non-empty), an optional ``system`` message, ``model``
    (None: the service's), ``max_tokens`` >= 1 and ``temperature`` in [0, 2].

    Raises ValidationError naming the bad field.
    """

    prompt: str
    model: str | None = None
    system: str | None = None
    max_tokens: int = 256
    temperature: float = 0.7

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValidationError.for_field("prompt", "must be a non-empty string")
        for name in ("model", "system"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValidationError.for_field(name, "must be a non-empty string or None")
        tokens = self.max_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValidationError.for_field(
                "max_tokens", f"must be an integer >= 1, got {tokens!r}"
            )
        heat = self.temperature
        if isinstance(heat, bool) or not isinstance(heat, int | float) or not 0 <= heat <= 2:
            raise ValidationError.for_field("temperature", f"must be in [0, 2], got {heat!r}")

    def messages(self) -> list[dict[str, str]]:
        """The chat messages: the system message, if any, then the prompt."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.prompt}]


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """A generation: its ``text``, the ``model`` that wrote it, token ``usage``, the time it
    took in milliseconds (retries included) and the ``host`` that answered."""

    text: str
    model: str
    usage: Mapping[str, Any]
    latency_ms: float
    host: str
    finish_reason: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def total_tokens(usage: Mapping[str, Any]) -> int:
    """``total_tokens`` of an OpenAI usage object, else prompt + completion tokens."""
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    parts = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
    return sum(p for p in parts if isinstance(p, int) and not isinstance(p, bool))
