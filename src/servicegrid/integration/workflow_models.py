"""API models of workflows: steps, branching, fan-out, per-step retry and timeout.

A workflow is a list of steps; the first one is where an execution starts. A step either calls
one action of a registered service (``service`` + ``action``, seed 003) or fans out
(``fork``: the ids of the steps that start parallel branches, which all finish before the
fork's ``next`` runs). ``next`` is a step id, ``null`` for the end, or a switch on a field of
the step's output::

    {"id": "classify", "service": "sentiment-analysis", "action": "analyze",
     "next": {"on": "sentiment", "cases": {"negative": "escalate"}, "default": "summarize"}}

``input`` maps what a step receives; without it a step gets the previous step's output (the
first step, and the first step of a branch, get the workflow's or the fork's input). Strings of
the form ``"${input.field}"``, ``"${steps.<id>.output.field}"`` or ``"${context.field}"`` are
replaced by that value (see :mod:`servicegrid.integration.mapping`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servicegrid.integration.json_checks import JsonObject, JsonValue, SafeStr, Text
from servicegrid.integration.partial_update import PartialUpdate
from servicegrid.resilience.backoff import Jitter
from servicegrid.resilience.retry_spec import RetrySpec

__all__ = [
    "STEP_ID_PATTERN",
    "DeleteResult",
    "NextSwitch",
    "Step",
    "StepRetry",
    "Workflow",
    "WorkflowCreate",
    "WorkflowPage",
    "WorkflowStatus",
    "WorkflowUpdate",
]

STEP_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
MAX_STEPS = 200
MAX_ATTEMPTS = 20
MAX_STEP_TIMEOUT_SECONDS = 3600.0

StepId = Annotated[str, Field(min_length=1, max_length=100, pattern=STEP_ID_PATTERN)]
ServiceRef = Annotated[SafeStr, Field(min_length=1, max_length=200)]
WorkflowName = Annotated[SafeStr, Field(min_length=1, max_length=200)]


class WorkflowStatus(enum.StrEnum):
    """Only ACTIVE workflows can be executed."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    DRAFT = "DRAFT"


class StepRetry(BaseModel):
    """How often a failed action call is tried again: exponential backoff with full jitter.

    Only transient failures (unavailable, timed out, 429, 5xx) are retried; a 4xx answer or an
    output that does not match the action's schema fails the step at once. A step without a
    ``retry`` of its own gets the defaults: 4 attempts (3 retries), as Conductor's tasks do;
    ``"retry": null`` makes one attempt.
    """

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=4, ge=1, le=MAX_ATTEMPTS)
    initial_delay_seconds: float = Field(default=0.5, ge=0, le=60, allow_inf_nan=False)
    max_delay_seconds: float = Field(default=10.0, ge=0, le=600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> StepRetry:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise ValueError("max_delay_seconds must be at least initial_delay_seconds")
        return self

    def retry_spec(self) -> RetrySpec:
        """This policy as a RetrySpec: ``max_attempts`` counts every attempt, the first included."""
        return RetrySpec.exponential(
            self.max_attempts,
            base_delay=self.initial_delay_seconds,
            max_delay=self.max_delay_seconds,
            jitter=Jitter.FULL,
        )


class NextSwitch(BaseModel):
    """Go to ``cases[value]`` where value is the output field ``on`` names, else ``default``.

    ``on`` is a dotted path into the step's output (``"result.label"``). Values that are not
    strings are matched by their JSON text (``true``, ``3``). A ``default`` of null ends the
    branch when no case matches.
    """

    model_config = ConfigDict(extra="forbid")

    on: SafeStr = Field(min_length=1, max_length=500)
    cases: dict[SafeStr, StepId | None] = Field(min_length=1)
    default: StepId | None = None


Next = StepId | NextSwitch | None


class Step(BaseModel):
    """One step: an action call (``service`` + ``action``) or a fan-out (``fork``)."""

    model_config = ConfigDict(extra="forbid")

    id: StepId
    service: ServiceRef | None = None
    action: ServiceRef | None = None
    fork: list[StepId] | None = Field(default=None, min_length=1, max_length=50)
    next: Next = None
    input: JsonValue = None
    retry: StepRetry | None = Field(default_factory=StepRetry)
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=MAX_STEP_TIMEOUT_SECONDS, allow_inf_nan=False
    )
    description: Text = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        calls = self.service is not None or self.action is not None
        if self.fork is not None:
            if calls:
                raise ValueError("a step either forks or calls an action, not both")
            if len(set(self.fork)) != len(self.fork):
                raise ValueError("fork lists a branch twice")
        elif self.service is None or self.action is None:
            raise ValueError("a step needs both 'service' and 'action' (or 'fork')")
        return self

    @property
    def is_fork(self) -> bool:
        return self.fork is not None

    def targets(self) -> list[str]:
        """Every step id ``next`` can lead to (fork branches not included)."""
        if self.next is None:
            return []
        if isinstance(self.next, str):
            return [self.next]
        found = [target for target in self.next.cases.values() if target is not None]
        if self.next.default is not None:
            found.append(self.next.default)
        return list(dict.fromkeys(found))


Steps = Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]


class WorkflowCreate(BaseModel):
    """The body of a workflow creation."""

    model_config = ConfigDict(extra="forbid")

    name: WorkflowName
    description: Text = ""
    steps: Steps
    metadata: JsonObject = Field(default_factory=dict)
    status: WorkflowStatus = WorkflowStatus.ACTIVE


class WorkflowUpdate(PartialUpdate):
    """A partial update: only the fields present change; none may be null."""

    name: WorkflowName | None = None
    description: Text | None = None
    steps: Steps | None = None
    metadata: JsonObject | None = None
    status: WorkflowStatus | None = None


class Workflow(BaseModel):
    """A workflow as the API returns it; ``version`` counts its updates."""

    id: str
    name: str
    description: str
    steps: list[Step]
    metadata: dict[str, Any]
    status: WorkflowStatus
    version: int
    created_at: datetime
    updated_at: datetime


class WorkflowPage(BaseModel):
    """One page of workflows."""

    items: list[Workflow]
    total: int
    page: int
    per_page: int
    pages: int


class DeleteResult(BaseModel):
    """The answer to a workflow deletion."""

    id: str
    name: str
    deleted: bool = True
