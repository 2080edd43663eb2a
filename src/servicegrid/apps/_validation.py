"""One set of checks for both protocols: the REST body's pydantic model checks gRPC requests too.

A gRPC request is turned into the dict its REST twin would carry and validated by
the same model; a failure becomes :class:`~servicegrid.errors.ValidationError`
naming the field (``INVALID_ARGUMENT`` through the error interceptor).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from servicegrid.errors import ValidationError, field_error

__all__ = ["field_path", "validated"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("tags", 2)`` -> ``tags[2]``: a pydantic location as a gRPC field path."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validated(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """``data`` checked by ``model``; ValidationError naming every bad field, the first in
    its message."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            field_error(field_path(tuple(e["loc"])), e["msg"], e["type"])
            for e in exc.errors(include_url=False)
        ]
        first = problems[0]
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        raise ValidationError(message, validation_errors=problems) from None
