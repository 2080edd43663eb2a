"""Reading the integration service's replies: the JSON answer, or the typed error it means.

Nothing here does I/O. :func:`answer` is the reply check both clients hand to
the transport, so the retry and the breaker see the typed errors: 422 →
:class:`ValidationError` listing each field, 404 → :class:`ResourceNotFoundError`
naming the resource, 409 → :class:`ConflictError`, 503 →
:class:`ServiceUnavailableError`. :class:`WorkflowExecution` is the answer about
an execution, and :func:`poll_wait` says when to ask about it again.
"""

from __future__ import annotations

from typing import Any, Final

from servicegrid.clients.integration.requests import Request
from servicegrid.clock import Clock
from servicegrid.errors import InvalidResponse, ResourceNotFoundError, ServiceError, ValidationError
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http import error_for_reply

__all__ = [
    "TERMINAL_EXECUTION_STATUSES",
    "WorkflowExecution",
    "answer",
    "error_for",
    "execution_id",
    "is_terminal",
    "poll_wait",
]

TERMINAL_EXECUTION_STATUSES: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class WorkflowExecution(dict[str, Any]):
    """An execution as the service returns it; a key it lacks is looked up in its ``output``.

    So ``result["sentiment"]`` and ``result.get("sentiment")`` read the output of a
    COMPLETED execution; ``in``, iteration and ``len`` see the execution's own keys.
    A key in neither raises KeyError naming the execution's status.
    """

    def __missing__(self, key: str) -> Any:
        output = dict.get(self, "output")
        if isinstance(output, dict) and key in output:
            return output[key]
        status = dict.get(self, "status", "unknown")
        why = f"status {status}"
        if error := dict.get(self, "error"):
            why += f", error: {error}"
        elif status not in TERMINAL_EXECUTION_STATUSES:
            why += ", not finished: no output yet"
        raise KeyError(
            f"{key!r} is neither a field of execution {dict.get(self, 'id')!r} "
            f"nor a key of its output ({why})"
        )

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def is_terminal(execution: WorkflowExecution) -> bool:
    """Whether the execution has ended (COMPLETED, FAILED or CANCELLED)."""
    return dict.get(execution, "status") in TERMINAL_EXECUTION_STATUSES


def execution_id(execution: WorkflowExecution, service: str) -> str:
    """The execution's id; InvalidResponse when the answer has none."""
    found = dict.get(execution, "id")
    if not isinstance(found, str) or not found:
        raise InvalidResponse(
            f"the execution answer has no id: {dict(execution)!r}", service=service
        )
    return found


def poll_wait(
    execution: WorkflowExecution, deadline: float, poll_interval: float, clock: Clock
) -> float | None:
    """Seconds to wait before asking about ``execution`` again: ``poll_interval``, cut short
    by ``deadline`` (a ``clock.now()`` value); None once it has ended or the deadline passed."""
    if is_terminal(execution):
        return None
    left = deadline - clock.now()
    return min(poll_interval, left) if left > 0 else None


def _json_object(reply: Reply) -> dict[str, Any] | None:
    try:
        body = reply.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _validation_errors(body: dict[str, Any] | None) -> list[Any]:
    """The problems listed in our ``validation_errors`` or FastAPI's ``detail`` list, as sent;
    :class:`ValidationError` turns them into its one ``{"field", "message", "type"}`` shape."""
    if body is None:
        return []
    raw = body.get("validation_errors")
    if not isinstance(raw, list) or not raw:
        raw = body.get("detail")
    return list(raw) if isinstance(raw, list) else []


def _server_message(body: dict[str, Any] | None) -> str | None:
    if body is None:
        return None
    for key in ("message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def error_for(call: Call, reply: Reply, request: Request, service: str) -> ServiceError:
    """The typed error for an error answer, with the fields seed 003's callers read."""
    generic = error_for_reply(call, reply, service=service)
    body = _json_object(reply)
    details: dict[str, Any] = dict(generic.details)
    if body is not None:
        details["body"] = body
        if isinstance(body.get("details"), dict):
            details = {**body["details"], **details}
    where = f"{request.describe()} answered HTTP {reply.status}"
    kw: dict[str, Any] = {"service": service, "details": details}
    if generic.retry_after is not None:
        kw["retry_after"] = generic.retry_after
    if isinstance(generic, ValidationError):
        problems = ValidationError(validation_errors=_validation_errors(body)).validation_errors
        summary = _server_message(body) or "; ".join(
            f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:5]
        )
        return ValidationError(
            f"{where}: {summary or 'validation failed'}", validation_errors=problems, **kw
        )
    if isinstance(generic, ResourceNotFoundError):
        resource_type: Any
        resource_id: Any
        resource_type, resource_id = request.resource or (None, None)
        if body is not None:
            resource_type = body.get("resource_type") or resource_type
            resource_id = body.get("resource_id") or resource_id
        message = _server_message(body) or f"{resource_type or 'resource'} not found"
        return ResourceNotFoundError(
            f"{where}: {message}",
            resource_type=None if resource_type is None else str(resource_type),
            resource_id=None if resource_id is None else str(resource_id),
            **kw,
        )
    said = _server_message(body)
    return type(generic)(f"{where}: {said}", **kw) if said else generic


def answer(call: Call, reply: Reply, request: Request, service: str) -> dict[str, Any]:
    """The JSON object ``reply`` carries; the typed error for an error status or a bad body.

    An error status listed in ``request.accept`` is an answer when its body is a JSON object.
    """
    status = reply.status
    if status >= 400:
        body = _json_object(reply) if status in request.accept else None
        if body is None:
            raise error_for(call, reply, request, service)
        return body
    if not reply.content:
        return {}
    body = _json_object(reply)
    if body is None:
        kind = reply.header("content-type") or "no content type"
        raise InvalidResponse(
            f"{request.describe()} answered HTTP {status} with a body that is not a JSON object "
            f"({kind}; starts {reply.text[:60]!r})",
            service=service,
        )
    return body
