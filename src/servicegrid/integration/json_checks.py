"""Checks on the JSON values and JSON Schemas the integration API accepts, before it stores them.

Python's ``json`` module reads more than a database or an HTTP peer will take back: ``NaN`` and
``Infinity`` (PostgreSQL's ``json`` type refuses them, JSON responses cannot carry them), lone
surrogates such as ``"\\ud800"`` (no UTF-8 encoding exists for them), and nesting deep enough to
exhaust the recursion of the serializers. Text columns (names, descriptions) and the ids looked
up in them must also be free of NUL characters, which PostgreSQL rejects. The validators here
turn each of those into a plain :class:`ValueError` (a 422 naming the field, through pydantic),
so none of them reaches the database as a 500.

JSON Schemas must also be usable as they are stored: a known ``$schema``, valid against its
metaschema, and every ``$ref`` resolvable inside the schema itself. Schemas are never resolved
over the network (:data:`SCHEMA_REGISTRY` knows the published metaschemas only). Their patterns
must compile, and are matched under a time bound (:mod:`~servicegrid.integration.schema_patterns`).

Last, the one check of a value against a stored schema, for registered and native actions alike:
a schema is identified by its canonical JSON (:func:`schema_key`), its compiled validator is
cached under that key, and :func:`schema_problems` lists what is wrong as ``(path, message)``
pairs whose messages a caller can show as they are (never echoing a large value):

.. code-block:: python

    schema_problems(schema_key({"type": "object", "required": ["texts"]}), {})
    # [(["texts"], "is required")]
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Final, TypeAlias

import referencing.jsonschema
from jsonschema import exceptions as jsonschema_exceptions  # type: ignore[import-untyped]
from jsonschema import validators as jsonschema_validators
from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
from pydantic import AfterValidator, Field
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from servicegrid.integration.schema_patterns import safe_format_checker, safe_validator_class

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_LENGTH",
    "MAX_TEXT_LENGTH",
    "SCHEMA_REGISTRY",
    "JsonObject",
    "JsonValue",
    "Problem",
    "SafeStr",
    "Text",
    "bracketed",
    "check_json_schema",
    "check_json_value",
    "check_text",
    "dotted",
    "schema_key",
    "schema_problems",
    "schema_validator",
]

MAX_JSON_DEPTH = 64
"""How deeply arrays and objects may nest in a value the API accepts."""

MAX_TEXT_LENGTH = 10_000
"""The longest free text (a description) the API accepts."""

SCHEMA_REGISTRY: Registry[Any] = REGISTRY
"""What a ``$ref`` may point at besides the schema itself: the published metaschemas only."""

_FORBIDDEN_IN_TEXT = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LARGEST_NUMBER = int(sys.float_info.max)  # larger integers break arithmetic with floats
_REF_KEYWORDS = ("$ref", "$dynamicRef")
# instances a schema is tried on at registration: one whose $ref loops without end fails on them
_PROBES: tuple[Any, ...] = (None, True, 0, 0.5, "", [], {})


def check_text(value: str) -> str:
    """``value``, unless it holds a NUL character or a lone surrogate."""
    if _FORBIDDEN_IN_TEXT.search(value):
        raise ValueError("must not contain NUL characters or lone surrogates")
    return value


def _where(path: Sequence[str | int]) -> str:
    return f" at '{'/'.join(str(part) for part in path)}'" if path else ""


def check_json_value(value: Any) -> Any:
    """``value``, unless it nests too deeply or holds a lone surrogate or an unusable number.

    Numbers must be finite and no larger than the largest float. The walk does not recurse, so a
    value nested deeper than the interpreter's recursion limit is reported, not crashed on.
    """
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:
        current, path = pending.pop()
        if isinstance(current, float) and not math.isfinite(current):
            raise ValueError(f"numbers must be finite{_where(path)}")
        if isinstance(current, int) and abs(current) > _LARGEST_NUMBER:
            raise ValueError(f"numbers must be at most 1.8e308 in size{_where(path)}")
        if isinstance(current, str) and _SURROGATE.search(current):
            raise ValueError(f"strings must not contain lone surrogates{_where(path)}")
        if isinstance(current, Mapping | list):
            if len(path) >= MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep{_where(path)}")
            items = current.items() if isinstance(current, Mapping) else enumerate(current)
            for key, item in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise ValueError(f"keys must not contain lone surrogates{_where(path)}")
                pending.append((item, [*path, key]))
    return value


def schema_validator(schema: Mapping[str, Any] | bool) -> Any:
    """A validator for ``schema`` (of the draft its ``$schema`` names, else 2020-12).

    It resolves ``$ref`` inside the schema and to the published metaschemas, never over the
    network, and matches patterns under a time bound. Raises :class:`ValueError` when
    ``$schema`` names no draft this service knows.
    """
    return _validator_class(schema)(schema, registry=SCHEMA_REGISTRY)


def _validator_class(schema: Mapping[str, Any] | bool) -> Any:
    return safe_validator_class(_draft_class(schema))


def _draft_class(schema: Mapping[str, Any] | bool) -> Any:
    if isinstance(schema, bool) or "$schema" not in schema:
        return jsonschema_validators.validator_for(schema)
    dialect = schema["$schema"]
    if not isinstance(dialect, str):
        raise ValueError("'$schema' must be a string")
    try:
        found = jsonschema_validators.validator_for(schema, default=None)
    except ValueError:  # not parseable as a URI
        found = None
    if found is None:
        raise ValueError(f"unknown '$schema' {dialect!r}")
    return found


def check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, unless it is not a JSON Schema this service can validate with.

    The message says where the problem is (``at 'properties/a/type'``).
    """
    check_json_value(schema)
    draft = _draft_class(schema)
    cls = safe_validator_class(draft)
    try:
        # the draft's own metaschema, with patterns ("format": "regex") compiled by the engine
        # that runs them
        cls.check_schema(schema, format_checker=safe_format_checker(draft))
    except jsonschema_exceptions.SchemaError as exc:
        where = _where(list(exc.absolute_path))
        raise ValueError(f"not a valid JSON Schema{where}: {exc.message}") from None
    dangling = next(_dangling_refs(cls, schema), None)
    if dangling is not None:
        path, ref = dangling
        raise ValueError(f"not a valid JSON Schema{_where(path)}: {ref!r} does not resolve")
    validator = cls(schema, registry=SCHEMA_REGISTRY)
    for probe in _PROBES:
        try:
            for _error in validator.iter_errors(probe):
                pass
        except RecursionError:
            raise ValueError("not a valid JSON Schema: its references loop without end") from None
    return schema


def _dangling_refs(cls: Any, schema: dict[str, Any]) -> Iterator[tuple[list[str | int], str]]:
    """Each ``$ref`` of ``schema`` that points at nothing, with where it is."""
    specification = referencing.jsonschema.specification_with(
        cls.ID_OF(cls.META_SCHEMA), default=referencing.Specification.OPAQUE
    )
    root: Resource[Any] = specification.create_resource(schema)
    resolver = SCHEMA_REGISTRY.resolver_with_root(root)
    pending = [(root, resolver)]
    while pending:
        resource, current = pending.pop()
        contents = resource.contents
        if isinstance(contents, dict):
            for keyword in _REF_KEYWORDS:
                ref = contents.get(keyword)
                if not isinstance(ref, str):
                    continue
                try:
                    current.lookup(ref)
                except (Unresolvable, ValueError):
                    yield [*_path_of(schema, contents), keyword], ref
        for sub in resource.subresources():
            pending.append((sub, current.in_subresource(sub)))


def _path_of(schema: Any, target: Any) -> list[str | int]:
    """Where ``target`` (an object inside ``schema``) sits, for the error message."""
    pending: list[tuple[Any, list[str | int]]] = [(schema, [])]
    while pending:
        current, path = pending.pop()
        if current is target:
            return path
        if isinstance(current, dict):
            pending.extend((value, [*path, key]) for key, value in current.items())
        elif isinstance(current, list):
            pending.extend((value, [*path, index]) for index, value in enumerate(current))
    return []


SafeStr = Annotated[str, AfterValidator(check_text)]
"""A string without NUL characters or lone surrogates (bound its length where it is used)."""

Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH), AfterValidator(check_text)]
"""Free text such as a description: at most :data:`MAX_TEXT_LENGTH` characters, no NUL."""

JsonValue = Annotated[Any, AfterValidator(check_json_value)]
"""Any JSON value that :func:`check_json_value` accepts."""

JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_value)]
"""A JSON object that :func:`check_json_value` accepts."""


# ---- checking values against a schema ---------------------------------------------

MAX_MESSAGE_LENGTH: Final = 200
"""The longest message :func:`schema_problems` gives; longer ones are cut, ending in ``...``."""

Problem: TypeAlias = tuple[list[str | int], str]
"""Where a value breaks its schema (the path to the part, ``[]`` for the whole) and how."""

_JSON_TYPES: Final = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


def schema_key(schema: Mapping[str, Any]) -> str:
    """``schema`` as canonical JSON: the key its compiled validator is cached under."""
    return json.dumps(schema, sort_keys=True)


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    return schema_validator(json.loads(schema_json))


def schema_problems(schema_json: str, value: Any) -> list[Problem]:
    """Each place where ``value`` breaks the schema ``schema_json`` (see :func:`schema_key`).

    Problems come ordered by path, then by the keyword that failed, each listed once. A
    missing or unaccepted property is named at its own path (``["texts"]``: ``is required``).
    A schema that cannot be used (a ``$ref`` to nowhere or one that loops, stored before
    registration checked for them) is one problem at the root, not a crash.
    """
    try:
        validator = _validator(schema_json)
        if validator.is_valid(value):
            return []
        errors = list(validator.iter_errors(value))
    except (Unresolvable, RecursionError, ValueError, OverflowError) as exc:
        return [([], _capped(f"the schema cannot be used: {type(exc).__name__}: {exc}"))]
    errors.sort(key=lambda e: ([_sortable(part) for part in e.absolute_path], str(e.validator)))
    found: list[Problem] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for error in errors:
        for path, message in _explained(error):
            if (tuple(path), message) not in seen:
                seen.add((tuple(path), message))
                found.append((path, message))
    return found


def dotted(path: Sequence[str | int]) -> str:
    """``path`` as dotted names: ``["texts", 0]`` is ``"texts.0"``; the root is ``""``."""
    return ".".join(str(part) for part in path)


def bracketed(path: Sequence[str | int]) -> str:
    """``path`` as Python would index it: ``["texts", 0]`` is ``"texts[0]"``, root ``""``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _explained(error: jsonschema_exceptions.ValidationError) -> list[Problem]:
    """What one schema error means, where it is; messages never echo a (large) value."""
    where: list[str | int] = list(error.absolute_path)
    kind, limit, instance = error.validator, error.validator_value, error.instance
    if kind == "required" and isinstance(instance, Mapping):
        return [([*where, name], "is required") for name in limit if name not in instance]
    if kind == "additionalProperties" and _closed_without_patterns(error):
        accepted = list(error.schema.get("properties", {}))
        message = "is not an accepted field"
        if accepted:
            message = _capped(f"{message}; accepted: {', '.join(accepted)}")
        return [([*where, name], message) for name in instance if name not in accepted]
    if kind == "type":
        wanted = " or ".join(limit) if isinstance(limit, list) else limit
        return [(where, f"must be of type {wanted}, got {_json_type(instance)}")]
    if kind in ("minItems", "minLength") and limit == 1:
        return [(where, "must not be empty")]
    if kind == "minItems":
        return [(where, _capped(f"must have at least {limit} items"))]
    if kind == "minimum":
        return [(where, _capped(f"must be >= {limit}, got {instance}"))]
    if kind == "maximum":
        return [(where, _capped(f"must be <= {limit}, got {instance}"))]
    return [(where, _capped(str(error.message)))]


def _closed_without_patterns(error: jsonschema_exceptions.ValidationError) -> bool:
    # with patternProperties, an extra name is one no pattern matched, or one whose match
    # timed out: the validator's own message says which
    return (
        error.validator_value is False
        and isinstance(error.instance, Mapping)
        and "patternProperties" not in error.schema
    )


def _sortable(part: str | int) -> tuple[int, str]:
    # indexes in numeric order (2 before 10), and never an int compared with a str
    return (0, f"{part:020d}") if isinstance(part, int) else (1, part)


def _json_type(value: object) -> str:
    for kind, name in _JSON_TYPES:  # bool first: it is also an int
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _capped(message: str) -> str:
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 3] + "..."
