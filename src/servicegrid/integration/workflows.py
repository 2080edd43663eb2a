"""The workflow store: create, read, list, update and delete workflow definitions.

Before a definition is stored, its steps must form a runnable graph
(:func:`~servicegrid.integration.workflow_models.check_graph`) and every action a step names
must exist: on a registered service, or on one of our own model services
(:mod:`servicegrid.integration.native`). Problems are a :class:`ValidationError` whose
``validation_errors`` give each field's location, as FastAPI's own 422 answers do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicegrid.errors import ValidationError, field_error
from servicegrid.integration.db import WorkflowRow
from servicegrid.integration.native import native_action
from servicegrid.integration.registry import ServiceRegistry
from servicegrid.integration.rows import NamedRows, as_utc, new_id, utcnow
from servicegrid.integration.workflow_models import (
    GraphProblem,
    Step,
    Workflow,
    WorkflowCreate,
    WorkflowPage,
    WorkflowStatus,
    WorkflowUpdate,
    check_graph,
)

__all__ = ["WorkflowStore", "validation_error"]


def validation_error(problems: Sequence[GraphProblem]) -> ValidationError:
    """A 422 error naming the field of each of ``problems`` (paths in the request body)."""
    errors = [
        field_error(".".join(str(part) for part in problem.loc), problem.msg)
        for problem in problems
    ]
    summary = "; ".join(
        f"{'.'.join(str(part) for part in problem.loc)}: {problem.msg}" for problem in problems
    )
    return ValidationError(f"invalid workflow: {summary}", validation_errors=errors)


def _to_model(row: WorkflowRow) -> Workflow:
    return Workflow(
        id=row.id,
        name=row.name,
        description=row.description,
        steps=[Step.model_validate(step) for step in row.steps],
        metadata=row.metadata_,
        status=WorkflowStatus(row.status),
        version=row.version,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [step.model_dump(mode="json", exclude_defaults=True) for step in steps]


class WorkflowStore:
    """Workflow definitions persisted through ``sessions``; names are unique.

    Every ``workflow_id`` argument is matched against ids first, then against names.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        services: ServiceRegistry,
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = new_id,
    ) -> None:
        self._services = services
        self._clock = clock
        self._new_id = new_id
        self._rows = NamedRows(
            sessions, WorkflowRow, _to_model, resource_type="workflow", clock=clock
        )

    async def check_steps(self, steps: Sequence[Step]) -> None:
        """Raise :class:`ValidationError` unless ``steps`` form a graph of known actions."""
        problems = check_graph(steps)
        if not problems:
            problems = await self._unknown_actions(steps)
        if problems:
            raise validation_error(problems)

    async def _unknown_actions(self, steps: Sequence[Step]) -> list[GraphProblem]:
        calls = [(index, step) for index, step in enumerate(steps) if not step.is_fork]
        registered = await self._services.by_names(step.service or "" for _, step in calls)
        problems = []
        for index, step in calls:
            service, action = step.service or "", step.action or ""
            found = registered.get(service)
            if found is not None:
                if not any(known.name == action for known in found.actions):
                    names = ", ".join(known.name for known in found.actions) or "none"
                    problems.append(
                        GraphProblem(
                            ("steps", index, "action"),
                            f"service {service!r} has no action {action!r} (it has: {names})",
                        )
                    )
            elif native_action(service, action) is None:
                problems.append(
                    GraphProblem(
                        ("steps", index, "service"),
                        f"no registered service {service!r} with an action {action!r}",
                    )
                )
        return problems

    async def create(self, spec: WorkflowCreate) -> tuple[Workflow, bool]:
        """Store a new workflow; returns it, and whether it is new.

        Creating again a workflow identical to the one stored under its name returns that one;
        a different one under a taken name is a :class:`ConflictError`.
        """
        await self.check_steps(spec.steps)
        now = self._clock()
        row = WorkflowRow(
            id=self._new_id(),
            name=spec.name,
            description=spec.description,
            status=spec.status.value,
            steps=_steps_json(spec.steps),
            metadata_=dict(spec.metadata),
            version=1,
            created_at=now,
            updated_at=now,
        )

        def same(stored: Workflow) -> bool:
            return (
                stored.description == spec.description
                and stored.status is spec.status
                and stored.metadata == dict(spec.metadata)
                and _steps_json(stored.steps) == _steps_json(spec.steps)
            )

        return await self._rows.add_unless_same(row, same)

    async def get(self, workflow_id: str) -> Workflow:
        """The workflow with this id, else this name; :class:`ResourceNotFoundError` if none."""
        return await self._rows.get(workflow_id)

    async def list(
        self, *, status: WorkflowStatus | None = None, page: int = 1, per_page: int = 20
    ) -> WorkflowPage:
        """One page of workflows, oldest first, optionally only those with ``status``."""
        return WorkflowPage(**await self._rows.page(status=status, page=page, per_page=per_page))

    async def update(self, workflow_id: str, changes: WorkflowUpdate) -> Workflow:
        """Apply the fields set in ``changes``; new steps are checked as at creation.

        Executions already started keep the steps they started with.
        """
        if changes.steps is not None:
            await self.check_steps(changes.steps)

        def change(row: WorkflowRow) -> None:
            if changes.steps is not None:
                row.steps = _steps_json(changes.steps)
            if changes.model_fields_set:
                row.version += 1

        return await self._rows.update(workflow_id, changes, change)

    async def delete(self, workflow_id: str) -> Workflow:
        """Remove the workflow and return it as it was; its executions stay readable."""
        return await self._rows.remove(workflow_id)
