"""The base of the partial-update bodies of the integration API (PATCH a service, a workflow)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["PartialUpdate"]


class PartialUpdate(BaseModel):
    """A body whose fields may each be left out, but not sent as null; unknown fields are refused.

    Subclasses declare every field as ``X | None = None``: None stands for "left out",
    so ``model_fields_set`` and the non-None fields are exactly what changes.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value
