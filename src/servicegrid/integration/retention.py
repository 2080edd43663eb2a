"""Retention of finished executions: a purge, and the sweeper that runs it periodically.

An execution is purged once it has been COMPLETED, FAILED or CANCELLED for longer than the
retention: its row, its steps' rows and every durable run that carried it (the first run, the
runs of each resume and the child runs of each fork) are deleted. PENDING and RUNNING executions
are never touched, however old.

The execution's own rows go first, in one transaction that checks the status again, so an
execution resumed while the purge ran is kept. Its durable runs are deleted after that commit;
a process that stops between the two leaves only those runs behind, which nothing reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from dbos import DBOS
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.integration.db import ExecutionRow, ExecutionStepRow
from servicegrid.integration.execution_models import ExecutionStatus

__all__ = [
    "DEFAULT_PURGE_INTERVAL",
    "PURGE_BATCH",
    "RetentionSweeper",
    "RunRemover",
    "purge_finished",
    "remove_durable_runs",
]

_log = logging.getLogger("servicegrid.integration")

DEFAULT_PURGE_INTERVAL = 3600.0
"""Seconds between two purges of the sweeper."""

PURGE_BATCH = 500
"""Executions deleted per transaction: a large backlog never holds one long write lock."""

_FINISHED = tuple(status.value for status in ExecutionStatus if status.finished)

RunRemover = Callable[[Sequence[str]], Awaitable[None]]
"""Deletes the durable runs of the executions with these ids."""


async def remove_durable_runs(execution_ids: Sequence[str]) -> None:
    """Delete every DBOS run of these executions, with their checkpoints and child runs.

    A run's id is the execution id, ``{execution id}:resume-…`` for a resume, and
    ``{run id}/{step}/{branch}`` for a fork's branch. Needs the process's DBOS launched.
    """
    if not execution_ids:
        return
    runs = await DBOS.list_workflows_async(
        workflow_id_prefix=list(execution_ids), load_input=False, load_output=False
    )
    wanted = set(execution_ids)
    ids = [
        run.workflow_id
        for run in runs
        if run.workflow_id in wanted or run.workflow_id.split("/", 1)[0].split(":", 1)[0] in wanted
    ]
    if ids:
        await DBOS.delete_workflows_async(ids, delete_children=True)


async def purge_finished(
    engine: AsyncEngine,
    *,
    before: datetime,
    remove_runs: RunRemover = remove_durable_runs,
    batch: int = PURGE_BATCH,
) -> list[str]:
    """Delete the executions that finished before ``before``; returns their ids."""
    finished_before = (
        ExecutionRow.status.in_(_FINISHED),
        ExecutionRow.finished_at.is_not(None),
        ExecutionRow.finished_at < before,
    )
    purged: list[str] = []
    while True:
        async with engine.begin() as connection:
            candidates = list(
                await connection.scalars(
                    select(ExecutionRow.id)
                    .where(*finished_before)
                    .order_by(ExecutionRow.finished_at, ExecutionRow.id)
                    .limit(batch)
                )
            )
            if not candidates:
                return purged
            deleted = list(
                await connection.scalars(
                    delete(ExecutionRow)
                    .where(ExecutionRow.id.in_(candidates), *finished_before)
                    .returning(ExecutionRow.id)
                )
            )
            if deleted:
                await connection.execute(
                    delete(ExecutionStepRow).where(ExecutionStepRow.execution_id.in_(deleted))
                )
        await remove_runs(deleted)
        purged.extend(deleted)
        if len(candidates) < batch:
            return purged


class RetentionSweeper:
    """Purges executions finished more than ``retention_days`` ago, every ``interval`` seconds.

    ``start()`` runs the first purge at once, in a task of its own; ``aclose()`` cancels it. A
    failed purge is logged and tried again at the next interval.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention_days: float,
        interval: float = DEFAULT_PURGE_INTERVAL,
        remove_runs: RunRemover = remove_durable_runs,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not retention_days > 0:
            raise ValueError("retention_days must be greater than 0")
        if not interval > 0:
            raise ValueError("interval must be greater than 0")
        self.engine = engine
        self.retention = timedelta(days=retention_days)
        self.interval = interval
        self._remove_runs = remove_runs
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.purges = 0
        """Purges completed so far (successful or not): what a test waits on."""

    def cutoff(self) -> datetime:
        """The finish time before which an execution is purged now."""
        return datetime.fromtimestamp(self._clock.wall(), UTC) - self.retention

    async def purge(self) -> list[str]:
        """Purge once, now; returns the ids of the executions deleted."""
        return await purge_finished(
            self.engine, before=self.cutoff(), remove_runs=self._remove_runs
        )

    def start(self) -> None:
        """Start purging in the background; a no-op when already started."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="execution-retention")

    async def _run(self) -> None:
        while True:
            try:
                purged = await self.purge()
            except Exception:  # the database may be briefly away: the next round tries again
                _log.exception("purging finished executions failed")
            else:
                if purged:
                    _log.info("purged %d finished executions", len(purged))
            self.purges += 1
            await self._clock.asleep(self.interval)

    async def aclose(self) -> None:
        """Stop purging; waits for a purge in progress to be cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
