"""Each REST call of the integration API as a :class:`Request`: method, path, query, body.

Nothing here does I/O. The clients build their requests here: the same five
calls on each :class:`Collection` (:data:`WORKFLOWS`, :data:`SERVICES`,
:data:`EXECUTIONS`), and a function for each other call. A bad id (an empty
string, not a string) raises ``ValueError`` naming the argument before anything
is sent, and :func:`to_call` turns a request into the transport's
:class:`~servicegrid.transports.base.Call`.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final
from urllib.parse import quote, urlencode

from servicegrid.clients.integration.policies import OperationType
from servicegrid.transports.base import Call
from servicegrid.transports.httpx_compat import json_body

__all__ = [
    "EXECUTIONS",
    "IDEMPOTENCY_HEADER",
    "SERVICES",
    "WORKFLOWS",
    "Collection",
    "Request",
    "ServiceFields",
    "WorkflowFields",
    "execute_service_action",
    "execute_workflow",
    "execution_action",
    "integration_health",
    "list_workflow_executions",
    "service_health",
    "to_call",
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


def _page(status: str | None, page: int, per_page: int) -> dict[str, str | int]:
    params: dict[str, str | int] = {"page": page, "per_page": per_page}
    if status is not None:
        params["status"] = status.value if isinstance(status, enum.Enum) else str(status)
    return params


def _run_body(
    input_data: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {"input_data": dict(input_data or {}), "context": dict(context or {})}


def _as_json(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [dict(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class _Fields:
    """The fields a create or an update sends; a field left None is not sent."""

    def body(self) -> dict[str, Any]:
        """The JSON body: each field given, a mapping as a dict, a list of mappings as dicts."""
        given = ((field.name, getattr(self, field.name)) for field in fields(self))
        return {name: _as_json(value) for name, value in given if value is not None}


@dataclass(frozen=True, slots=True)
class Collection:
    """The items of one kind: workflows live at ``/workflows/<workflow_id>``.

    Creating, updating, reading and deleting one, and listing a page of them, are the same
    calls for every kind; a 404 names the kind and the id.
    """

    kind: str

    @property
    def path(self) -> str:
        return f"/{self.kind}s"

    def item(self, item_id: str) -> tuple[str, tuple[str, str]]:
        """The item's path and its ``resource``; an id that is not a non-empty string raises."""
        path = f"{self.path}/{_segment(f'{self.kind}_id', item_id)}"
        return path, (self.kind, item_id)

    def create(self, fields: _Fields) -> Request:
        body = fields.body()
        return Request(_CREATE, "POST", self.path, body=body, idempotency_key=True)

    def update(self, item_id: str, fields: _Fields) -> Request:
        path, resource = self.item(item_id)
        return Request(_UPDATE, "PATCH", path, body=fields.body(), resource=resource)

    def get(self, item_id: str) -> Request:
        path, resource = self.item(item_id)
        return Request(_READ, "GET", path, resource=resource)

    def delete(self, item_id: str) -> Request:
        path, resource = self.item(item_id)
        return Request(_DELETE, "DELETE", path, resource=resource)

    def page(self, status: str | None, page: int, per_page: int) -> Request:
        return Request(_READ, "GET", self.path, _page(status, page, per_page))


WORKFLOWS: Final = Collection("workflow")
SERVICES: Final = Collection("service")
EXECUTIONS: Final = Collection("execution")


# ---- workflows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowFields(_Fields):
    """The fields of a workflow that a create or an update sets."""

    name: str | None
    description: str | None
    steps: Sequence[Mapping[str, Any]] | None
    metadata: Mapping[str, Any] | None
    status: str | None


# ---- executions ---------------------------------------------------------------------------


def execute_workflow(
    workflow_id: str, input_data: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> Request:
    path, resource = WORKFLOWS.item(workflow_id)
    body = _run_body(input_data, context)
    return Request(
        _CREATE, "POST", f"{path}/execute", body=body, resource=resource, idempotency_key=True
    )


def list_workflow_executions(
    workflow_id: str, status: str | None, page: int, per_page: int
) -> Request:
    path, resource = WORKFLOWS.item(workflow_id)
    params = _page(status, page, per_page)
    return Request(_READ, "GET", f"{path}/executions", params, resource=resource)


def execution_action(execution_id: str, action: str) -> Request:
    """``action`` is ``"cancel"`` or ``"resume"``."""
    path, resource = EXECUTIONS.item(execution_id)
    return Request(_UPDATE, "POST", f"{path}/{action}", resource=resource, idempotency_key=True)


# ---- services -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceFields(_Fields):
    """The fields of a service that a registration or an update sets."""

    name: str | None
    description: str | None
    endpoint: str | None
    status: str | None
    actions: Sequence[Mapping[str, Any]] | None
    metadata: Mapping[str, Any] | None


def execute_service_action(
    service_id: str,
    action: str,
    input_data: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
) -> Request:
    path, resource = SERVICES.item(service_id)
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
    path, resource = SERVICES.item(service_id)
    return Request(_READ, "GET", f"{path}/health", resource=resource, accept=_REPORTS)
