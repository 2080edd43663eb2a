"""Regular expressions in JSON Schemas, matched with a time bound.

A registered schema's ``pattern`` and ``patternProperties`` are written by whoever registers a
service, and a pattern such as ``^(a|a)*$`` backtracks for longer than the age of the universe on
a few dozen characters. Python's :mod:`re` cannot be interrupted, so a check of one request would
hold its worker for good. Every keyword that matches a pattern (``pattern``,
``patternProperties``, and ``additionalProperties``/``unevaluatedProperties``, which look at
``patternProperties`` to tell which properties are covered) is replaced here by one that matches
with the :mod:`regex` engine and gives up after :data:`MATCH_TIMEOUT` seconds. A match that gives
up is a validation error that says so, never a hang or a 500.

The same engine checks ``format: "regex"``, so a pattern is compiled at registration by the engine
that later runs it. ``unevaluatedProperties`` follows draft 2020-12's rules in every draft.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import regex  # type: ignore[import-untyped]
from jsonschema import FormatChecker  # type: ignore[import-untyped]
from jsonschema import validators as jsonschema_validators
from jsonschema._utils import extras_msg  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from referencing.jsonschema import lookup_recursive_ref

__all__ = ["MATCH_TIMEOUT", "is_regex", "safe_format_checker", "safe_validator_class"]

MATCH_TIMEOUT = 0.1
"""Seconds one match of one pattern against one string may take."""


class _Undecided(Exception):
    """A match gave up: whether a property is covered by ``patternProperties`` is unknown."""

    def __init__(self, pattern: str, text: str) -> None:
        super().__init__(pattern, text)
        self.error = _timeout_error(pattern, text, "property name")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _timeout_error(pattern: str, text: str, what: str) -> ValidationError:
    return ValidationError(
        f"{what} {_shown(text)} could not be matched against the pattern {_shown(pattern)} "
        f"within {MATCH_TIMEOUT:g} s"
    )


def _search(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` is found in ``text``; None when the match gave up."""
    try:
        return regex.search(pattern, text, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return None


def _covered(pattern: str, key: str) -> bool:
    found = _search(pattern, key)
    if found is None:
        raise _Undecided(pattern, key)
    return found


def is_regex(instance: object) -> bool:
    """Whether ``instance`` compiles as a pattern (anything that is not a string passes)."""
    if isinstance(instance, str):
        regex.compile(instance)
    return True


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield _timeout_error(pattern, instance, "string")
    elif not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield _timeout_error(pattern, key, "property name")
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        key
        for key in instance
        if key not in properties and not any(_covered(pattern, key) for pattern in patterns)
    ]


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    try:
        extras = _additional(instance, schema)
    except _Undecided as undecided:
        yield undecided.error
        return
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            names = ", ".join(repr(extra) for extra in sorted(extras))
            patterns = ", ".join(repr(pattern) for pattern in sorted(schema["patternProperties"]))
            yield ValidationError(f"{names} {verb} not match any of the regexes: {patterns}")
        else:
            names, verb = extras_msg(sorted(extras, key=str))
            yield ValidationError(
                f"Additional properties are not allowed ({names} {verb} unexpected)"
            )


def _valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _evaluated(validator: Any, instance: Mapping[str, Any], schema: Any) -> set[str]:
    """The keys of ``instance`` that ``schema`` evaluates (draft 2020-12, §11.3)."""
    if validator.is_type(schema, "boolean"):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
        ref = schema.get(keyword)
        if ref is None:
            continue
        resolver = validator._resolver
        if keyword == "$recursiveRef":
            resolved = lookup_recursive_ref(resolver)
        else:
            resolved = resolver.lookup(ref)
        child = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
        keys |= _evaluated(child, instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys |= {k for k, v in instance.items() if _valid(validator.descend(v, subschema))}
    for pattern in schema.get("patternProperties", {}):
        keys |= {key for key in instance if _covered(pattern, key)}
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys |= _evaluated(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _valid(validator.descend(instance, subschema)):
                keys |= _evaluated(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    try:
        evaluated = _evaluated(validator, instance, schema)
    except _Undecided as undecided:
        yield undecided.error
        return
    rejected = [
        key
        for key in instance
        if key not in evaluated
        and not _valid(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if rejected and unevaluated is False:
        names, verb = extras_msg(sorted(rejected, key=str))
        yield ValidationError(f"Unevaluated properties are not allowed ({names} {verb} unexpected)")
    elif rejected:
        names, verb = extras_msg(rejected)
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({names} {verb} unevaluated and invalid)"
        )


_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
}


@functools.cache
def safe_format_checker(cls: Any) -> Any:
    """``cls``'s format checker, with ``regex`` checked by the bounded engine."""
    checker = FormatChecker(formats=())
    checker.checkers = dict(cls.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=regex.error)(is_regex)
    return checker


@functools.cache
def safe_validator_class(cls: Any) -> Any:
    """``cls`` (a jsonschema validator class) with every pattern matched under a time bound."""
    keywords = {name: check for name, check in _KEYWORDS.items() if name in cls.VALIDATORS}
    return jsonschema_validators.extend(cls, keywords, format_checker=safe_format_checker(cls))
