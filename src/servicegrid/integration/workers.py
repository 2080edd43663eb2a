"""Workers sharing one PostgreSQL database take over the executions of a worker that died.

Each worker writes a heartbeat (its row in ``integration_workers``) every third of
``SERVICEGRID_WORKER_TIMEOUT``. A worker whose heartbeat is older than the timeout is taken to be
dead: the first survivor to win a PostgreSQL advisory lock on its id (the lock is held by one
transaction at a time, so exactly one wins) has the durable engine recover the dead worker's
pending runs (DBOS re-enqueues them, and one worker runs each), starts any run the dead worker
recorded but never started, and removes the dead worker's row. Steps the dead worker completed
are not run again: their rows say COMPLETED.

A worker that comes back under its own executor id resumes what was still its own at start, as
before; its heartbeat makes its row fresh again. SQLite has one writer, so one worker: there is
nothing to take over and no heartbeat is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.integration.db import WorkerRow

__all__ = ["DEFAULT_WORKER_TIMEOUT", "WorkerWatch"]

_log = logging.getLogger("servicegrid.integration")

DEFAULT_WORKER_TIMEOUT = 15.0
"""Seconds without a heartbeat after which a worker's executions are taken over."""

Recover = Callable[[str], Awaitable[int]]
"""Recovers the pending runs of the executor named; returns how many."""


class WorkerWatch:
    """This worker's heartbeat, and the takeover of workers whose heartbeat stopped.

    ``recover`` hands a dead executor's pending runs to the durable engine; ``settle`` starts
    runs recorded but never started. Only for a PostgreSQL ``database``.
    """

    def __init__(
        self,
        database: AsyncEngine,
        *,
        executor_id: str,
        recover: Recover,
        settle: Callable[[], Awaitable[None]],
        timeout: float = DEFAULT_WORKER_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be above zero, got {timeout!r}")
        self.executor_id = executor_id
        self.timeout = timeout
        self._database = database
        self._recover = recover
        self._settle = settle
        self._clock = clock
        self._started = self._now()
        self._task: asyncio.Task[None] | None = None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall(), UTC)

    async def start(self) -> None:
        """Write the first heartbeat, then keep beating and watching in the background."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"worker-watch-{self.executor_id}")

    async def aclose(self) -> None:
        """Stop beating; the row stays, so survivors take over if this worker does not return."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._clock.asleep(self.timeout / 3)
            try:
                await self.beat()
                await self.take_over()
            except Exception:  # a database hiccup must not end the watch
                _log.exception("worker %s: heartbeat or takeover failed", self.executor_id)

    async def beat(self) -> None:
        """Record that this worker is alive now."""
        now = self._now()
        statement = insert(WorkerRow).values(
            executor_id=self.executor_id, started_at=self._started, heartbeat_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[WorkerRow.executor_id], set_={"heartbeat_at": now}
        )
        async with self._database.begin() as connection:
            await connection.execute(statement)

    async def take_over(self) -> list[str]:
        """Take over every worker silent for longer than the timeout; the ids taken over."""
        cutoff = self._now() - timedelta(seconds=self.timeout)
        async with self._database.connect() as connection:
            silent = await connection.scalars(
                select(WorkerRow.executor_id).where(
                    WorkerRow.heartbeat_at < cutoff, WorkerRow.executor_id != self.executor_id
                )
            )
            candidates = list(silent)
        taken = [dead for dead in candidates if await self._take_over_one(dead, cutoff)]
        if taken:
            await self._settle()
        return taken

    async def _take_over_one(self, dead: str, cutoff: datetime) -> bool:
        async with self._database.begin() as connection:
            won = await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"),
                {"key": f"servicegrid-worker:{dead}"},
            )
            if not won:
                return False
            still_silent = await connection.scalar(
                select(WorkerRow.executor_id).where(
                    WorkerRow.executor_id == dead, WorkerRow.heartbeat_at < cutoff
                )
            )
            if still_silent is None:  # it came back, or another survivor took it over
                return False
            recovered = await self._recover(dead)
            await connection.execute(delete(WorkerRow).where(WorkerRow.executor_id == dead))
        _log.warning(
            "worker %s took over worker %s (silent for over %gs): %d runs recovered",
            self.executor_id,
            dead,
            self.timeout,
            recovered,
        )
        return True
