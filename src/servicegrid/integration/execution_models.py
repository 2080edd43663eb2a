"""API models of workflow executions and of direct action calls."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from servicegrid.integration.json_checks import JsonObject

__all__ = [
    "HEADER_VALUE_PATTERN",
    "ActionRequest",
    "ActionResult",
    "ExecuteRequest",
    "Execution",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionStep",
    "ExecutionStepStatus",
]

HEADER_VALUE_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"
"""Printable ASCII without leading or trailing space: what may go out as an HTTP header value."""
MAX_HEADER_VALUE_LENGTH = 200
# context keys that are forwarded to the services a step calls, as X-Request-ID / X-Project-ID
_HEADER_KEYS = ("request_id", "project_id")


def _check_context(context: dict[str, Any]) -> dict[str, Any]:
    for key in _HEADER_KEYS:
        value = context.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            continue
        if not (
            isinstance(value, str)
            and len(value) <= MAX_HEADER_VALUE_LENGTH
            and re.fullmatch(HEADER_VALUE_PATTERN, value)
        ):
            raise ValueError(
                f"{key} is sent on as an HTTP header: it must be an integer or a string of at "
                f"most {MAX_HEADER_VALUE_LENGTH} printable ASCII characters"
            )
    return context


Context = Annotated[JsonObject, AfterValidator(_check_context)]


class ExecutionStatus(enum.StrEnum):
    """PENDING until a worker picks it up; COMPLETED, FAILED and CANCELLED are final."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class ExecutionStepStatus(enum.StrEnum):
    """What happened to one step."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ExecuteRequest(BaseModel):
    """The body of ``POST /workflows/{id}/execute``; ``context`` carries project/request ids."""

    model_config = ConfigDict(extra="forbid")

    input_data: JsonObject = Field(default_factory=dict)
    context: Context = Field(default_factory=dict)


class ExecutionStep(BaseModel):
    """One step of an execution as it ran (or is running)."""

    id: str
    service: str | None
    action: str | None
    status: ExecutionStepStatus
    input: Any = None
    output: Any = None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    error: dict[str, Any] | None = None


class Execution(BaseModel):
    """One execution: its status, input, output or error, and every step it ran so far."""

    id: str
    workflow_id: str
    workflow_name: str
    workflow_version: int
    status: ExecutionStatus
    input_data: dict[str, Any]
    context: dict[str, Any]
    output: Any = None
    error: dict[str, Any] | None = None
    steps: list[ExecutionStep] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class ExecutionPage(BaseModel):
    """One page of executions (steps left out; read one execution for them)."""

    items: list[Execution]
    total: int
    page: int
    per_page: int
    pages: int


class ActionRequest(BaseModel):
    """The body of ``POST /services/{id}/actions/{action}/execute``."""

    model_config = ConfigDict(extra="forbid")

    input_data: JsonObject = Field(default_factory=dict)
    context: Context = Field(default_factory=dict)


class ActionResult(BaseModel):
    """What an action answered, checked against its output schema."""

    service_id: str
    service: str
    action: str
    output: Any
    attempts: int
    duration_ms: float
