"""The execution store: executions and their steps as the API shows them.

Every write here is idempotent, because the durable engine may run a piece of an execution again
after a crash: a status only moves forward (a finished execution is never rewritten, a cancelled
one stays cancelled), and a step's row is keyed by (execution, step).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from servicegrid.errors import ResourceNotFoundError
from servicegrid.integration.db import ExecutionRow, ExecutionStepRow
from servicegrid.integration.execution_models import (
    ExecuteRequest,
    Execution,
    ExecutionJob,
    ExecutionPage,
    ExecutionStatus,
    ExecutionStep,
    ExecutionStepStatus,
    StepRecord,
)
from servicegrid.integration.rows import as_utc, new_id, read_page, utcnow
from servicegrid.integration.workflow_models import Step, StepGraph, Workflow

__all__ = ["ExecutionStore"]

_STEP_KEY = ("execution_id", "step_id")
_OPEN = (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value)


# built once: the hot statements take their values as parameters
_MOMENT = DateTime(timezone=True)
_MARK_RUNNING = (
    update(ExecutionRow)
    .where(ExecutionRow.id == bindparam("eid"), ExecutionRow.status.in_(_OPEN))
    .values(
        status=ExecutionStatus.RUNNING.value,
        started_at=func.coalesce(ExecutionRow.started_at, bindparam("now", type_=_MOMENT)),
        updated_at=bindparam("now", type_=_MOMENT),
    )
)
_FINISH = (
    update(ExecutionRow)
    .where(ExecutionRow.id == bindparam("eid"), ExecutionRow.status.in_(_OPEN))
    .values(
        status=bindparam("status"),
        output=bindparam("output", type_=JSON),
        error=bindparam("error", type_=JSON),
        finished_at=bindparam("now", type_=_MOMENT),
        updated_at=bindparam("now", type_=_MOMENT),
    )
)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _step_model(row: ExecutionStepRow) -> ExecutionStep:
    return _record(row).as_step()


def _record(row: ExecutionStepRow) -> StepRecord:
    return StepRecord(
        id=row.step_id,
        sequence=row.sequence,
        service=row.service,
        action=row.action,
        started_at=_maybe_utc(row.started_at),
        status=ExecutionStepStatus(row.status),
        input=row.input,
        output=row.output,
        attempts=row.attempts,
        finished_at=_maybe_utc(row.finished_at),
        duration_ms=row.duration_ms,
        error=row.error,
    )


def _to_model(row: ExecutionRow, steps: Sequence[ExecutionStepRow] = ()) -> Execution:
    return Execution(
        id=row.id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        status=ExecutionStatus(row.status),
        input_data=row.input_data,
        context=row.context,
        output=row.output,
        error=row.error,
        steps=[_step_model(step) for step in steps],
        created_at=as_utc(row.created_at),
        started_at=_maybe_utc(row.started_at),
        finished_at=_maybe_utc(row.finished_at),
        updated_at=as_utc(row.updated_at),
    )


class ExecutionStore:
    """Executions persisted through ``sessions``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = new_id,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._new_id = new_id
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("ExecutionStore needs sessions bound to an AsyncEngine")
        # the hot writes are single Core statements: no ORM unit of work around them
        self._engine = bind
        dialect = bind.dialect.name
        insert_for = sqlite_insert if dialect == "sqlite" else postgresql_insert
        upsert = insert_for(ExecutionStepRow)
        self._save_step = upsert.on_conflict_do_update(
            index_elements=list(_STEP_KEY),
            set_={
                column.name: upsert.excluded[column.name]
                for column in ExecutionStepRow.__table__.columns
                if column.name not in _STEP_KEY
            },
        )

    async def create(
        self, workflow: Workflow, request: ExecuteRequest, *, idempotency_key: str | None
    ) -> tuple[Execution, bool]:
        """A new PENDING execution, or the one already made with ``idempotency_key``.

        Returns the execution and whether it was created now.
        """
        if idempotency_key is not None:
            existing = await self._by_key(idempotency_key)
            if existing is not None:
                return existing, False
        now = self._clock()
        execution_id = self._new_id()
        values: dict[str, Any] = {
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
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(ExecutionRow).values(**values))
        except IntegrityError:
            raced = None if idempotency_key is None else await self._by_key(idempotency_key)
            if raced is None:
                raise
            return raced, False
        return _to_model(ExecutionRow(**values)), True

    async def _by_key(self, key: str) -> Execution | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ExecutionRow).where(ExecutionRow.idempotency_key == key)
            )
            return None if row is None else _to_model(row)

    async def get(self, execution_id: str) -> Execution:
        """The execution with its steps; :class:`ResourceNotFoundError` if there is none."""
        async with self._sessions() as session:
            row = await self._row(session, execution_id)
            steps = await session.scalars(
                select(ExecutionStepRow)
                .where(ExecutionStepRow.execution_id == execution_id)
                .order_by(ExecutionStepRow.started_at, ExecutionStepRow.sequence)
            )
            return _to_model(row, list(steps))

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
            return ExecutionPage(items=[_to_model(row) for row in rows], **numbers)

    async def unfinished(self) -> builtins.list[tuple[str, str]]:
        """(execution id, run id) of every PENDING or RUNNING execution."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(ExecutionRow.id, ExecutionRow.run_id).where(ExecutionRow.status.in_(_OPEN))
            )
            return [(row[0], row[1]) for row in rows]

    async def mark_running(self, execution_id: str) -> None:
        """PENDING → RUNNING, stamping the start once."""
        async with self._engine.begin() as connection:
            await connection.execute(_MARK_RUNNING, {"eid": execution_id, "now": self._clock()})

    async def finish(
        self,
        execution_id: str,
        status: ExecutionStatus,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Set a final status unless the execution already has one; True if it was set."""
        values = {
            "eid": execution_id,
            "status": status.value,
            "output": output,
            "error": error,
            "now": self._clock(),
        }
        async with self._engine.begin() as connection:
            result = await connection.execute(_FINISH, values)
            return bool(result.rowcount)

    async def reopen(self, execution_id: str, run_id: str) -> bool:
        """FAILED or CANCELLED → PENDING under a new run; False if it was not in either."""
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
            await session.commit()
            return bool(getattr(result, "rowcount", 0))

    async def completed_steps(self, execution_id: str) -> dict[str, StepRecord]:
        """The records of the steps that completed, by step id (what a resumed run reuses)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ExecutionStepRow).where(
                    ExecutionStepRow.execution_id == execution_id,
                    ExecutionStepRow.status == ExecutionStepStatus.COMPLETED.value,
                )
            )
            return {row.step_id: _record(row) for row in rows}

    async def step_records(
        self, execution_id: str, step_ids: Collection[str]
    ) -> dict[str, StepRecord]:
        """The records of ``step_ids`` that have a row, by step id."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ExecutionStepRow).where(
                    ExecutionStepRow.execution_id == execution_id,
                    ExecutionStepRow.step_id.in_(list(step_ids)),
                )
            )
            return {row.step_id: _record(row) for row in rows}

    async def save_step(self, execution_id: str, record: StepRecord) -> None:
        """Insert or replace the row of ``record.id`` (one statement: an upsert)."""
        values = {
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
        async with self._engine.begin() as connection:
            await connection.execute(self._save_step, values)

    async def _row(self, session: AsyncSession, execution_id: str) -> ExecutionRow:
        row = await session.get(ExecutionRow, execution_id)
        if row is None:
            raise ResourceNotFoundError(resource_type="execution", resource_id=execution_id)
        return row
