"""Each REST call of the integration API as a :class:`Request`: method, path, query, body.

Nothing here does I/O. Both clients build their requests with these functions,
so a bad id (an empty string, not a string) raises ``ValueError`` naming the
argument before anything is sent, and :func:`to_call` turns a request into the
transport's :class:`~servicegrid.transports.base.Call`.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from servicegrid.clients.integration.policies import OperationType
from servicegrid.transports.base import Call
from servicegrid.transports.httpx_compat import json_body

__all__ = [
    "IDEMPOTENCY_HEADER",
    "Request",
    "create_workflow",
    "delete_workflow",
    "deregister_service",
    "execute_service_action",
    "execute_workflow",
    "execution_action",
    "get_execution",
    "get_service",
    "get_workflow",
    "integration_health",
    "list_services",
    "list_workflow_executions",
    "list_workflows",
    "register_service",
    "service_health",
    "to_call",
    "update_service",
    "update_workflow",
]

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

# a health endpoint answers 503 with a report saying "unhealthy": that report is the answer
_REPORTS: Final = frozenset({503})

_CREATE, _UPDATE, _DELETE, _READ = (
    OperationType.CREATE,
    OperationType.UPDATE,
    OperationType.DELETE,
    OperationType.READ,
)


@dataclass(frozen=True, slots=True)
class Request:
    """One REST call: what to send, how to retry it, and what its 404 would be about.

    ``resource`` is ``(type, id)`` for the typed 404; ``idempotency_key`` asks for one
    ``Idempotency-Key`` per call; ``accept`` lists error statuses whose JSON object body
    is the answer (a health report saying "unhealthy").
    """

    op: OperationType
    method: str
    path: str
    params: dict[str, str | int] | None = None
    body: dict[str, Any] | None = None
    resource: tuple[str, str] | None = None
    idempotency_key: bool = False
    accept: frozenset[int] = field(default_factory=frozenset)

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def to_call(request: Request, *, base_url: str, headers: Mapping[str, str], timeout: float) -> Call:
    """The transport call for ``request``; a new ``Idempotency-Key`` when it asks for one.

    The call is built once per client call, so every retry of it carries the same key.
    """
    sent = dict(headers)
    if request.idempotency_key:
        sent[IDEMPOTENCY_HEADER] = uuid.uuid4().hex
    url = f"{base_url}{request.path}"
    if request.params:
        url = f"{url}?{urlencode(request.params)}"
    body = None
    if request.body is not None:
        sent["content-type"] = "application/json"
        body = json_body(request.body)
    return Call(request.method, url, tuple(sent.items()), body, timeout, name=request.describe())


# ---- building blocks ----------------------------------------------------------------------


def _segment(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _page(status: str | None, page: int, per_page: int) -> dict[str, str | int]:
    params: dict[str, str | int] = {"page": page, "per_page": per_page}
    if status is not None:
        params["status"] = status.value if isinstance(status, enum.Enum) else str(status)
    return params


def _run_body(
    input_data: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {"input_data": dict(input_data or {}), "context": dict(context or {})}


def _as_list(items: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [dict(item) for item in items]


def _as_dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _workflow(workflow_id: str) -> tuple[str, tuple[str, str]]:
    return f"/workflows/{_segment('workflow_id', workflow_id)}", ("workflow", workflow_id)


def _service(service_id: str) -> tuple[str, tuple[str, str]]:
    return f"/services/{_segment('service_id', service_id)}", ("service", service_id)


def _execution(execution_id: str) -> tuple[str, tuple[str, str]]:
    return f"/executions/{_segment('execution_id', execution_id)}", ("execution", execution_id)


# ---- workflows ----------------------------------------------------------------------------


def _workflow_body(
    name: str | None,
    description: str | None,
    steps: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> dict[str, Any]:
    return _given(
        name=name,
        description=description,
        steps=_as_list(steps),
        metadata=_as_dict(metadata),
        status=status,
    )


def create_workflow(
    name: str,
    description: str,
    steps: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> Request:
    body = _workflow_body(name, description, steps, metadata, status)
    return Request(_CREATE, "POST", "/workflows", body=body, idempotency_key=True)


def update_workflow(
    workflow_id: str,
    name: str | None,
    description: str | None,
    steps: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> Request:
    path, resource = _workflow(workflow_id)
    body = _workflow_body(name, description, steps, metadata, status)
    return Request(_UPDATE, "PATCH", path, body=body, resource=resource)


def delete_workflow(workflow_id: str) -> Request:
    path, resource = _workflow(workflow_id)
    return Request(_DELETE, "DELETE", path, resource=resource)


def get_workflow(workflow_id: str) -> Request:
    path, resource = _workflow(workflow_id)
    return Request(_READ, "GET", path, resource=resource)


def list_workflows(status: str | None, page: int, per_page: int) -> Request:
    return Request(_READ, "GET", "/workflows", _page(status, page, per_page))


# ---- executions ---------------------------------------------------------------------------


def execute_workflow(
    workflow_id: str, input_data: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> Request:
    path, resource = _workflow(workflow_id)
    body = _run_body(input_data, context)
    return Request(
        _CREATE, "POST", f"{path}/execute", body=body, resource=resource, idempotency_key=True
    )


def get_execution(execution_id: str) -> Request:
    path, resource = _execution(execution_id)
    return Request(_READ, "GET", path, resource=resource)


def list_workflow_executions(
    workflow_id: str, status: str | None, page: int, per_page: int
) -> Request:
    path, resource = _workflow(workflow_id)
    params = _page(status, page, per_page)
    return Request(_READ, "GET", f"{path}/executions", params, resource=resource)


def execution_action(execution_id: str, action: str) -> Request:
    """``action`` is ``"cancel"`` or ``"resume"``."""
    path, resource = _execution(execution_id)
    return Request(_UPDATE, "POST", f"{path}/{action}", resource=resource, idempotency_key=True)


# ---- services -----------------------------------------------------------------------------


def _service_body(
    name: str | None,
    description: str | None,
    endpoint: str | None,
    status: str | None,
    actions: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return _given(
        name=name,
        description=description,
        endpoint=endpoint,
        status=status,
        actions=_as_list(actions),
        metadata=_as_dict(metadata),
    )


def register_service(
    name: str,
    description: str,
    endpoint: str | None,
    actions: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> Request:
    body = _service_body(name, description, endpoint, status, actions, metadata)
    return Request(_CREATE, "POST", "/services", body=body, idempotency_key=True)


def update_service(
    service_id: str,
    name: str | None,
    description: str | None,
    endpoint: str | None,
    status: str | None,
    actions: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
) -> Request:
    path, resource = _service(service_id)
    body = _service_body(name, description, endpoint, status, actions, metadata)
    return Request(_UPDATE, "PATCH", path, body=body, resource=resource)


def deregister_service(service_id: str) -> Request:
    path, resource = _service(service_id)
    return Request(_DELETE, "DELETE", path, resource=resource)


def get_service(service_id: str) -> Request:
    path, resource = _service(service_id)
    return Request(_READ, "GET", path, resource=resource)


def list_services(status: str | None, page: int, per_page: int) -> Request:
    return Request(_READ, "GET", "/services", _page(status, page, per_page))


def execute_service_action(
    service_id: str,
    action: str,
    input_data: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
) -> Request:
    path, resource = _service(service_id)
    return Request(
        _CREATE,
        "POST",
        f"{path}/actions/{_segment('action', action)}/execute",
        body=_run_body(input_data, context),
        resource=resource,
        idempotency_key=True,
    )


# ---- health -------------------------------------------------------------------------------


def integration_health() -> Request:
    return Request(_READ, "GET", "/health", accept=_REPORTS)


def service_health(service_id: str) -> Request:
    path, resource = _service(service_id)
    return Request(_READ, "GET", f"{path}/health", resource=resource, accept=_REPORTS)
