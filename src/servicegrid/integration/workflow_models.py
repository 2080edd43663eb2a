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

Before a workflow is stored its steps' shape is checked (:func:`check_graph`): step ids are
unique; every ``next``, switch case and fork branch names a step; there is no cycle; every step
is reachable. Steps form *regions*: the main path from the first step, and one per fork branch.
Regions never share a step, so a branch cannot run into the main path or into another branch, and
a fork's ``next`` runs exactly once, after all its branches.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
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
    "GraphProblem",
    "NextSwitch",
    "Step",
    "StepGraph",
    "StepRetry",
    "Workflow",
    "WorkflowCreate",
    "WorkflowPage",
    "WorkflowStatus",
    "WorkflowUpdate",
    "check_graph",
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


# ---- the shape of the steps ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphProblem:
    """One thing wrong with the steps; ``loc`` is the field's path inside the request body."""

    loc: tuple[str | int, ...]
    msg: str


class StepGraph:
    """The steps of one workflow, by id, with the first step as the entry.

    ``position`` gives each step's place in the workflow's list (its row's ``sequence``).
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.by_id = {step.id: step for step in self.steps}
        self.position = {step.id: index for index, step in enumerate(self.steps)}
        self.entry = self.steps[0].id

    def region(self, start: str) -> list[str]:
        """The steps reachable from ``start`` through ``next`` (branches not included)."""
        seen: list[str] = []
        pending = [start]
        while pending:
            current = pending.pop()
            if current in seen or current not in self.by_id:
                continue
            seen.append(current)
            pending.extend(reversed(self.by_id[current].targets()))
        return seen


def check_graph(steps: Sequence[Step]) -> list[GraphProblem]:
    """Every problem with the shape of ``steps``; empty when it can run."""
    problems = _duplicates(steps)
    if problems:
        return problems
    graph = StepGraph(steps)
    problems = _dangling(graph)
    if problems:
        return problems
    problems = _cycles(graph)
    if problems:
        return problems
    return _regions(graph)


def _loc(index: int, *rest: str | int) -> tuple[str | int, ...]:
    return ("steps", index, *rest)


def _duplicates(steps: Sequence[Step]) -> list[GraphProblem]:
    seen: set[str] = set()
    problems = []
    for index, step in enumerate(steps):
        if step.id in seen:
            problems.append(GraphProblem(_loc(index, "id"), f"step id {step.id!r} is repeated"))
        seen.add(step.id)
    return problems


def _dangling(graph: StepGraph) -> list[GraphProblem]:
    problems = []
    for index, step in enumerate(graph.steps):
        references: list[tuple[tuple[str | int, ...], str]] = []
        if isinstance(step.next, str):
            references.append((_loc(index, "next"), step.next))
        elif step.next is not None:
            for case, target in step.next.cases.items():
                if target is not None:
                    references.append((_loc(index, "next", "cases", case), target))
            if step.next.default is not None:
                references.append((_loc(index, "next", "default"), step.next.default))
        for branch, target in enumerate(step.fork or []):
            references.append((_loc(index, "fork", branch), target))
        for loc, target in references:
            if target not in graph.by_id:
                problems.append(GraphProblem(loc, f"no step has the id {target!r}"))
            elif target == graph.entry:
                problems.append(
                    GraphProblem(loc, f"{target!r} is the first step; nothing may lead back to it")
                )
    return problems


def _edges(step: Step) -> list[str]:
    return [*step.targets(), *(step.fork or [])]


def _cycles(graph: StepGraph) -> list[GraphProblem]:
    index_of = {step.id: index for index, step in enumerate(graph.steps)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph.by_id:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(_edges(graph.by_id[root]))]
        state[root] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                where = _loc(index_of[path[-1]], "next")
                return [GraphProblem(where, f"steps form a cycle: {' -> '.join(loop)}")]
            if not state.get(target):
                state[target] = 1
                path.append(target)
                stack.append(iter(_edges(graph.by_id[target])))
    return []


def _regions(graph: StepGraph) -> list[GraphProblem]:
    index_of = {step.id: index for index, step in enumerate(graph.steps)}
    owner: dict[str, str] = {}
    problems: list[GraphProblem] = []
    pending: list[tuple[str, str]] = [(graph.entry, "the main path")]
    while pending:
        start, name = pending.pop(0)
        for step_id in graph.region(start):
            if step_id in owner:
                problems.append(
                    GraphProblem(
                        _loc(index_of[step_id], "id"),
                        f"step {step_id!r} is on both {owner[step_id]} and {name}; "
                        "a branch must end (next: null) before its fork's next step",
                    )
                )
                continue
            owner[step_id] = name
            for branch in graph.by_id[step_id].fork or []:
                pending.append((branch, f"the branch {branch!r} of fork {step_id!r}"))
    for step in graph.steps:
        if step.id not in owner:
            problems.append(
                GraphProblem(
                    _loc(index_of[step.id], "id"),
                    f"step {step.id!r} cannot be reached from the first step",
                )
            )
    return problems
