"""Executions as the API shows them, and as a run keeps them.

The API's models of workflow executions and of direct action calls; then the run's own typed
records: the :class:`ExecutionJob` a run works on and the :class:`StepRecord` each step leaves
(written once, as the step's ``execution_steps`` row).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from servicegrid.errors import ServiceError
from servicegrid.integration.json_checks import JsonObject
from servicegrid.integration.mapping import MappingError
from servicegrid.integration.workflow_models import StepGraph

__all__ = [
    "HEADER_VALUE_PATTERN",
    "ActionRequest",
    "ActionResult",
    "ExecuteRequest",
    "Execution",
    "ExecutionJob",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionStep",
    "ExecutionStepStatus",
    "Scope",
    "StepRecord",
    "error_json",
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


# ---- what a run keeps -------------------------------------------------------------

Scope = dict[str, Any]
"""What a step's input mapping reads: ``input``, ``context``, ``execution`` and ``steps``
(each earlier step's ``{"output": ...}``), as :func:`~servicegrid.integration.mapping.render`
takes it."""


@dataclass(frozen=True, slots=True)
class ExecutionJob:
    """One execution as a run needs it: its steps, its input and its context."""

    execution_id: str
    workflow_id: str
    graph: StepGraph
    input_data: dict[str, Any]
    context: dict[str, Any]

    def scope(self, outputs: dict[str, Any]) -> Scope:
        """The mapping scope with ``outputs`` (step id → output) as the steps that ran."""
        return {
            "input": self.input_data,
            "context": self.context,
            "execution": {"id": self.execution_id, "workflow_id": self.workflow_id},
            "steps": {step_id: {"output": output} for step_id, output in outputs.items()},
        }


@dataclass(slots=True)
class StepRecord:
    """What one step did; ``sequence`` is the step's position in its workflow."""

    id: str
    sequence: int
    service: str | None
    action: str | None
    started_at: datetime | None
    status: ExecutionStepStatus = ExecutionStepStatus.RUNNING
    input: Any = None
    output: Any = None
    attempts: int = 0
    finished_at: datetime | None = None
    duration_ms: float | None = None
    error: dict[str, Any] | None = field(default=None)

    @property
    def completed(self) -> bool:
        return self.status is ExecutionStepStatus.COMPLETED

    def finish(self, moment: datetime) -> None:
        """Stamp the end of the step at ``moment``."""
        self.finished_at = moment
        if self.started_at is not None:
            self.duration_ms = (moment - self.started_at).total_seconds() * 1000

    def fail(self, error: BaseException) -> None:
        self.status = ExecutionStepStatus.FAILED
        self.error = error_json(error)

    def as_step(self) -> ExecutionStep:
        """The record as the API shows it."""
        return ExecutionStep(
            id=self.id,
            service=self.service,
            action=self.action,
            status=self.status,
            input=self.input,
            output=self.output,
            attempts=self.attempts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_ms=self.duration_ms,
            error=self.error,
        )


def error_json(error: BaseException) -> dict[str, Any]:
    """``error`` as a step's or an execution's ``error`` field: its type, message and details."""
    if isinstance(error, ServiceError):
        body: dict[str, Any] = {"type": type(error).__name__, "message": error.message}
        if error.details:
            body["details"] = error.details
        if error.service:
            body["service"] = error.service
        return body
    if isinstance(error, MappingError):
        return {"type": "InputMappingError", "message": str(error)}
    return {"type": type(error).__name__, "message": str(error) or type(error).__name__}
