"""Input mapping and switch lookups: ``"${steps.extract.output.text}"`` templates.

A string that is exactly one ``${path}`` is replaced by the value at ``path``, whatever its type;
``${path}`` inside a longer string is replaced by its text (JSON for non-strings). Paths start at
``input``, ``context``, ``steps.<id>.output`` or ``execution`` and go on with dotted keys or list
indexes (``steps.search.output.hits.0.id``). A path that leads nowhere is a
:class:`MappingError`, so a typo fails the step with a message instead of sending ``null``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MappingError", "lookup", "render", "switch_key"]

_WHOLE = re.compile(r"^\$\{([^${}]+)\}$")
_EMBEDDED = re.compile(r"\$\{([^${}]+)\}")
_MISSING = object()


class MappingError(ValueError):
    """A template names a path that does not exist."""


def lookup(scope: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` inside ``scope``; :class:`MappingError` when absent."""
    value = _walk(scope, path)
    if value is _MISSING:
        raise MappingError(f"'{path}' does not name a value")
    return value


def _walk(value: Any, path: str) -> Any:
    for part in path.strip().split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render(template: Any, scope: Mapping[str, Any]) -> Any:
    """``template`` with every ``${path}`` replaced from ``scope`` (recursively in lists/dicts)."""
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole:
            return lookup(scope, whole.group(1))
        return _EMBEDDED.sub(lambda match: _text(lookup(scope, match.group(1))), template)
    if isinstance(template, dict):
        return {key: render(value, scope) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, scope) for value in template]
    return template


def switch_key(output: Any, path: str) -> str | None:
    """The case key a switch on ``path`` picks in ``output``; None when the field is absent."""
    value = _walk(output, path)
    if value is _MISSING:
        return None
    return _text(value)
