"""The execution store: executions and their steps as the API shows them.

Every write here is idempotent, because the durable engine may run a piece of an execution again
after a crash: a status only moves forward (a finished execution is never rewritten, a cancelled
one stays cancelled), and a step's row is keyed by (execution, step).

What every execution does (its row, its steps' rows, its status, the polls) runs through
:mod:`~servicegrid.integration.execution_sql` on the driver; listing, recovery and resuming go
through SQLAlchemy.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicegrid.errors import ResourceNotFoundError
from servicegrid.integration.db import ExecutionRow, ExecutionStepRow
from servicegrid.integration.execution_models import (
    ExecuteRequest,
    Execution,
    ExecutionJob,
    ExecutionPage,
    ExecutionStatus,
    ExecutionStepStatus,
    StepRecord,
)
from servicegrid.integration.execution_sql import ExecutionStatements, Row
from servicegrid.integration.rows import as_utc, new_id, read_page, utcnow
from servicegrid.integration.workflow_models import Step, StepGraph, Workflow

__all__ = ["ExecutionClosed", "ExecutionStore"]

_OPEN = (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value)


class ExecutionClosed(Exception):
    """The execution ended (was cancelled, most often) while one of its steps ran."""

    def __init__(self, execution_id: str, status: str | None) -> None:
        super().__init__(f"execution {execution_id} is {status or 'gone'}")
        self.execution_id = execution_id
        self.status = status


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _record(row: Row) -> StepRecord:
    return StepRecord(
        id=row["step_id"],
        sequence=row["sequence"],
        service=row["service"],
        action=row["action"],
        started_at=_maybe_utc(row["started_at"]),
        status=ExecutionStepStatus(row["status"]),
        input=row["input"],
        output=row["output"],
        attempts=row["attempts"],
        finished_at=_maybe_utc(row["finished_at"]),
        duration_ms=row["duration_ms"],
        error=row["error"],
    )


def _to_model(row: Row, steps: builtins.list[Row] | None = None) -> Execution:
    return Execution(
        id=row["id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        status=ExecutionStatus(row["status"]),
        input_data=row["input_data"],
        context=row["context"],
        output=row["output"],
        error=row["error"],
        steps=[_record(step).as_step() for step in steps or ()],
        created_at=as_utc(row["created_at"]),
        started_at=_maybe_utc(row["started_at"]),
        finished_at=_maybe_utc(row["finished_at"]),
        updated_at=as_utc(row["updated_at"]),
    )


def _row_of(row: ExecutionRow) -> Row:
    return {column.name: getattr(row, column.name) for column in ExecutionRow.__table__.columns}


class ExecutionStore:
    """Executions persisted through ``sessions``, their hot statements through ``statements``
    (on the same database; see :func:`~servicegrid.integration.execution_sql.open_statements`).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        statements: ExecutionStatements,
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = new_id,
    ) -> None:
        self._sessions = sessions
        self._statements = statements
        self._clock = clock
        self._new_id = new_id

    async def create(
        self, workflow: Workflow, request: ExecuteRequest, *, idempotency_key: str | None
    ) -> tuple[Execution, bool]:
        """A new PENDING execution, or the one already made with ``idempotency_key``.

        Returns the execution and whether it was created now.
        """
        if idempotency_key is not None:
            existing = await self._statements.execution_by_key(idempotency_key)
            if existing is not None:
                return _to_model(existing), False
        now = self._clock()
        execution_id = self._new_id()
        row: Row = {
            "id": execution_id,
            "workflow_id": workflow.id,
            "workflow_name": workflow.name,
            "workflow_version": workflow.version,
            "plan": [step.model_dump(mode="json") for step in workflow.steps],
            "status": ExecutionStatus.PENDING.value,
            "input_data": dict(request.input_data),
            "context": dict(request.context),
            "idempotency_key": idempotency_key,
            "run_id": execution_id,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "output": None,
            "error": None,
            "updated_at": now,
        }
        if not await self._statements.insert_execution(row):
            raced = (
                None
                if idempotency_key is None
                else await self._statements.execution_by_key(idempotency_key)
            )
            if raced is None:
                raise RuntimeError(f"execution {execution_id} could not be stored")
            return _to_model(raced), False
        return _to_model(row), True

    async def get(self, execution_id: str) -> Execution:
        """The execution with its steps; :class:`ResourceNotFoundError` if there is none."""
        row = await self._statements.execution(execution_id)
        if row is None:
            raise ResourceNotFoundError(resource_type="execution", resource_id=execution_id)
        return _to_model(row, await self._statements.steps(execution_id))

    async def job(self, execution_id: str) -> ExecutionJob:
        """What a run of the execution needs: its steps, input and context."""
        async with self._sessions() as session:
            row = await self._row(session, execution_id)
            return ExecutionJob(
                execution_id=row.id,
                workflow_id=row.workflow_id,
                graph=StepGraph([Step.model_validate(step) for step in row.plan]),
                input_data=row.input_data,
                context=row.context,
            )

    async def run_state(self, execution_id: str) -> tuple[ExecutionStatus, str]:
        """The execution's status and the id of its current durable run."""
        async with self._sessions() as session:
            row = await self._row(session, execution_id)
            return ExecutionStatus(row.status), row.run_id

    async def list(
        self,
        workflow_id: str,
        *,
        status: ExecutionStatus | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> ExecutionPage:
        """One page of a workflow's executions, newest first."""
        query = select(ExecutionRow).where(ExecutionRow.workflow_id == workflow_id)
        if status is not None:
            query = query.where(ExecutionRow.status == status.value)
        order = (ExecutionRow.created_at.desc(), ExecutionRow.id)
        async with self._sessions() as session:
            rows, numbers = await read_page(session, query, order, page, per_page)
            return ExecutionPage(items=[_to_model(_row_of(row)) for row in rows], **numbers)

    async def unfinished(self) -> builtins.list[tuple[str, str]]:
        """(execution id, run id) of every PENDING or RUNNING execution."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(ExecutionRow.id, ExecutionRow.run_id).where(ExecutionRow.status.in_(_OPEN))
            )
            return [(row[0], row[1]) for row in rows]

    async def mark_running(self, execution_id: str) -> None:
        """PENDING → RUNNING, stamping the start once."""
        await self._statements.mark_running(execution_id, self._clock())

    async def finish(
        self,
        execution_id: str,
        status: ExecutionStatus,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Set a final status unless the execution already has one; True if it was set."""
        return await self._statements.finish(
            execution_id, status.value, output, error, self._clock()
        )

    async def reopen(self, execution_id: str, run_id: str) -> bool:
        """FAILED or CANCELLED → PENDING under a new run; False if it was not in either.

        The rows of the steps that did not complete go: the new run runs those steps again.
        """
        now = self._clock()
        async with self._sessions() as session:
            result = await session.execute(
                update(ExecutionRow)
                .where(
                    ExecutionRow.id == execution_id,
                    ExecutionRow.status.in_(
                        (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value)
                    ),
                )
                .values(
                    status=ExecutionStatus.PENDING.value,
                    run_id=run_id,
                    error=None,
                    finished_at=None,
                    updated_at=now,
                )
            )
            reopened = bool(getattr(result, "rowcount", 0))
            if reopened:
                await session.execute(
                    delete(ExecutionStepRow).where(
                        ExecutionStepRow.execution_id == execution_id,
                        ExecutionStepRow.status != ExecutionStepStatus.COMPLETED.value,
                    )
                )
            await session.commit()
            return reopened

    async def finished_steps(self, execution_id: str) -> dict[str, StepRecord]:
        """The records of the steps that ended (COMPLETED, or FAILED in the current run), by
        step id: what a run that starts again reuses instead of running them."""
        rows = await self._statements.final_steps(execution_id)
        return {row["step_id"]: _record(row) for row in rows}

    async def step_records(
        self, execution_id: str, step_ids: Collection[str]
    ) -> dict[str, StepRecord]:
        """The records of ``step_ids`` that have a row, by step id."""
        wanted = set(step_ids)
        rows = await self._statements.steps(execution_id)
        return {row["step_id"]: _record(row) for row in rows if row["step_id"] in wanted}

    async def save_step(self, execution_id: str, record: StepRecord) -> None:
        """Insert or replace the row of ``record.id``.

        Raises :class:`ExecutionClosed` when the execution is no longer PENDING or RUNNING
        (cancelled while the step ran): the run goes no further.
        """
        status = await self._statements.save_step(
            {
                "execution_id": execution_id,
                "step_id": record.id,
                "sequence": record.sequence,
                "status": record.status.value,
                "service": record.service,
                "action": record.action,
                "input": record.input,
                "output": record.output,
                "attempts": record.attempts,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "duration_ms": record.duration_ms,
                "error": record.error,
            }
        )
        if status not in _OPEN:
            raise ExecutionClosed(execution_id, status)

    async def _row(self, session: AsyncSession, execution_id: str) -> ExecutionRow:
        row = await session.get(ExecutionRow, execution_id)
        if row is None:
            raise ResourceNotFoundError(resource_type="execution", resource_id=execution_id)
        return row
