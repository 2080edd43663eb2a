"""Every native action, looked up by service and action, and the check of their input.

Adding an action means declaring one :class:`~.action.NativeAction` in its service's module
and listing it in :data:`_DECLARED`; the service names follow from the actions.
"""

from __future__ import annotations

from typing import Any, Final, cast

from servicegrid.errors import ResourceNotFoundError, ValidationError
from servicegrid.integration.json_checks import bracketed, schema_problems
from servicegrid.integration.native.action import InputProblem, NativeAction
from servicegrid.integration.native.documents import DOCUMENTS_PROCESS_PDF
from servicegrid.integration.native.embedding import EMBEDDING_GENERATE
from servicegrid.integration.native.reranking import RERANKING_RERANK

__all__ = [
    "NATIVE_SERVICES",
    "checked_input",
    "input_problem_error",
    "native_action",
    "native_actions",
    "require_native_action",
    "validate_native_input",
]

_DECLARED: Final = (EMBEDDING_GENERATE, RERANKING_RERANK, DOCUMENTS_PROCESS_PDF)

_ACTIONS: Final[dict[tuple[str, str], NativeAction]] = {(a.service, a.action): a for a in _DECLARED}

NATIVE_SERVICES: Final = frozenset(a.service for a in _DECLARED)
"""The service names a workflow step may use for a native action."""


def native_action(service: str, action: str) -> NativeAction | None:
    """The native action ``service.action``, or None if there is none."""
    return _ACTIONS.get((service, action))


def native_actions() -> list[NativeAction]:
    """Every native action, by service then action."""
    return [_ACTIONS[key] for key in sorted(_ACTIONS)]


def require_native_action(service: str, action: str) -> NativeAction:
    """The native action ``service.action``; ResourceNotFoundError naming the known ones."""
    spec = native_action(service, action)
    if spec is None:
        known = ", ".join(a.name for a in native_actions())
        raise ResourceNotFoundError(
            f"native action {service}.{action} not found; known: {known}",
            resource_type="action",
            resource_id=f"{service}.{action}",
            service=service,
        )
    return spec


def checked_input(spec: NativeAction, input_data: object) -> dict[str, Any]:
    """``input_data`` if it matches the action's input schema; else a ValidationError.

    Its ``validation_errors`` are ``{"field": "texts[0]", "message": ...}`` entries, with
    field ``input`` for the input as a whole.
    """
    problems = schema_problems(spec.input_key, input_data)
    if problems:
        raise _invalid(
            spec, [{"field": bracketed(path) or "input", "message": m} for path, m in problems]
        )
    return cast(dict[str, Any], input_data)


def input_problem_error(spec: NativeAction, problem: InputProblem) -> ValidationError:
    """The ValidationError that reports ``problem`` with the input of ``spec``."""
    return _invalid(spec, [{"field": problem.field, "message": problem.message}])


def validate_native_input(service: str, action: str, input_data: object) -> None:
    """Check ``input_data`` for ``service.action`` without calling anything.

    Raises ResourceNotFoundError for an unknown action and ValidationError (with
    ``validation_errors``) for bad input, exactly as
    :meth:`~.runner.NativeStepRunner.run` would.
    """
    spec = require_native_action(service, action)
    data = checked_input(spec, input_data)
    if spec.check is not None:
        try:
            spec.check(data)
        except InputProblem as problem:
            raise input_problem_error(spec, problem) from None


def _invalid(spec: NativeAction, problems: list[dict[str, str]]) -> ValidationError:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return ValidationError(
        f"{spec.name}: {summary}", service=spec.service, validation_errors=problems
    )
