"""The durable engine underneath executions: DBOS, and the two workflows an execution runs as.

DBOS records every run (an execution, or one branch of a fork) in its system database (SQLite
next to the service's database by default, the same PostgreSQL database otherwise), with the
branches a run started and what each returned. When the service restarts after a crash,
:meth:`DurableRuns.launch` starts DBOS, which runs every unfinished run of this worker again; a
branch that finished returns its recorded result. Steps are not DBOS steps: a step's row in
``execution_steps`` is its checkpoint (:mod:`~servicegrid.integration.runner`), which spares
each step the two statements of a DBOS step.

DBOS keeps one instance per process, and finds a workflow by its name when it recovers one. So
:meth:`DurableRuns.launch` registers the two workflows bound to the object that runs them, and
:meth:`DurableRuns.shutdown` drops them with DBOS: nothing of a run lives in a module global, and
a second engine in the same process is refused while one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandleAsync
from sqlalchemy import event
from sqlalchemy.engine import make_url

__all__ = [
    "APP_VERSION",
    "BranchBody",
    "DurableRuns",
    "ExecutionBody",
    "RunState",
    "dbos_system_url",
]

# DBOS recovers only workflows of the application version that started them: change it when the
# workflows' arguments or the order of their steps change meaning.
APP_VERSION = "servicegrid-executions-3"

EXECUTION_WORKFLOW = "servicegrid.execution"
BRANCH_WORKFLOW = "servicegrid.branch"

ExecutionBody = Callable[[str], Awaitable[None]]
"""Runs one execution, given its id: the body of the execution workflow."""

BranchBody = Callable[[str, str, "str | None", list[str]], Awaitable[dict[str, Any]]]
"""Runs one branch of a fork: (execution id, first step, step whose output it is given or None
for the execution's input, the ids of the steps that ran before the fork)."""


@dataclass(frozen=True, slots=True)
class RunState:
    """Where DBOS says a run stands: ``status`` is DBOS's (SUCCESS, ERROR, CANCELLED, ...);
    ``version`` is the :data:`APP_VERSION` that started it."""

    status: str
    error: str | None
    version: str | None


def dbos_system_url(database_url: str) -> str:
    """The DBOS system database for the service's ``database_url``.

    SQLite: a file beside the service's own (``x.db`` → ``x.workflows.db``), so the two
    writers never wait on one lock. PostgreSQL: the same database (DBOS uses its own schema).
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            raise ValueError("durable executions need a SQLite file, not an in-memory database")
        stem = path[: -len(".db")] if path.endswith(".db") else path
        return f"sqlite:///{stem}.workflows.db"
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database for durable executions: {url.get_backend_name()}")


def _system_engine(system_url: str) -> sa.Engine | None:
    """A tuned engine for a SQLite system database; None lets DBOS build its own."""
    if not system_url.startswith("sqlite"):
        return None
    engine = sa.create_engine(system_url, pool_size=1, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        connection.isolation_level = "IMMEDIATE"
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA foreign_keys=ON")
        # WAL with synchronous=NORMAL: a commit survives the process being killed
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    return engine


class DurableRuns:
    """This process's DBOS: launches it with the workflows bound, starts, steps and cancels runs.

    ``poll_interval`` is how often DBOS's background threads look for work, and so how long
    :meth:`shutdown` may wait.
    """

    def __init__(
        self,
        *,
        system_database_url: str,
        executor_id: str | None = None,
        log_level: str = "WARNING",
        poll_interval: float = 1.0,
    ) -> None:
        self.system_database_url = system_database_url
        self.executor_id = executor_id
        self.log_level = log_level
        self.poll_interval = poll_interval
        self._execution: Callable[..., Coroutine[Any, Any, None]] | None = None
        self._branch: Callable[..., Coroutine[Any, Any, dict[str, Any]]] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._launched = False

    async def launch(self, execution: ExecutionBody, branch: BranchBody) -> None:
        """Start DBOS with the two workflows running ``execution`` and ``branch``.

        DBOS resumes every unfinished run of this executor as it starts, on this event loop.
        Raises RuntimeError if an engine already runs in this process.
        """
        config: DBOSConfig = {
            "name": "servicegrid-integration",
            "system_database_url": self.system_database_url,
            "application_version": APP_VERSION,
            "log_level": self.log_level,
            "notification_listener_polling_interval_sec": self.poll_interval,
            "scheduler_polling_interval_sec": self.poll_interval,
        }
        engine = _system_engine(self.system_database_url)
        if engine is not None:
            config["system_database_engine"] = engine
        if self.executor_id:
            config["executor_id"] = self.executor_id
        dbos = DBOS(config=config)
        if getattr(dbos, "_launched", False):
            raise RuntimeError("an execution engine already runs in this process")

        async def run_execution(execution_id: str) -> None:
            with self._counted():
                await execution(execution_id)

        async def run_branch(
            execution_id: str, start: str, given_from: str | None, before: list[str]
        ) -> dict[str, Any]:
            with self._counted():
                return await branch(execution_id, start, given_from, before)

        self._execution = DBOS.workflow(name=EXECUTION_WORKFLOW)(run_execution)
        self._branch = DBOS.workflow(name=BRANCH_WORKFLOW)(run_branch)
        DBOS.launch()
        self._launched = True

    async def shutdown(self) -> None:
        """Stop DBOS; runs still going are cut off here and resumed by the next launch."""
        running = [task for task in self._running if not task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._launched:
            # the registry goes too: the workflows registered were bound to this object
            await asyncio.to_thread(DBOS.destroy, destroy_registry=True)
            self._launched = False
            # DBOS made its thread pool this loop's default executor and has just shut it down:
            # give the loop a live one, so that to_thread (and an engine started again) works
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())

    @property
    def running(self) -> int:
        """How many runs are going in this process now."""
        return sum(1 for task in self._running if not task.done())

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)

    # ---- runs --------------------------------------------------------------------------

    async def start(self, run_id: str, execution_id: str) -> None:
        """Start the run ``run_id`` of ``execution_id`` (nothing new if that run exists)."""
        assert self._execution is not None, "launch() first"
        with SetWorkflowID(run_id):
            await DBOS.start_workflow_async(self._execution, execution_id)

    async def branches(
        self,
        execution_id: str,
        fork_step: str,
        starts: list[str],
        given_from: str | None,
        before: list[str],
    ) -> list[dict[str, Any]]:
        """Run one child workflow per branch of ``fork_step`` and wait for all of them.

        The children's ids derive from the parent's, so a replay finds them again.
        """
        assert self._branch is not None, "launch() first"
        parent = DBOS.workflow_id
        handles: list[WorkflowHandleAsync[dict[str, Any]]] = []
        for start in starts:
            with SetWorkflowID(f"{parent}/{fork_step}/{start}"):
                handles.append(
                    await DBOS.start_workflow_async(
                        self._branch, execution_id, start, given_from, before
                    )
                )
        return [await handle.get_result() for handle in handles]

    async def state(self, run_id: str) -> RunState | None:
        """Where the run ``run_id`` stands, or None if DBOS never heard of it."""
        status = await DBOS.get_workflow_status_async(run_id)
        if status is None:
            return None
        error = None if status.error is None else str(status.error)
        return RunState(status.status, error, status.app_version)

    async def recover(self, executor_id: str) -> int:
        """Hand the pending runs of ``executor_id`` (a worker that died) back to the queue,
        where exactly one live worker picks each up; returns how many there were."""
        # DBOS's own recovery by executor id: an underscored classmethod in dbos 3.x (pyproject
        # keeps it below 4), covered by tests/integration/test_worker_takeover.py
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [executor_id])
        return len(handles)

    async def cancel(self, run_id: str) -> None:
        """Cancel the run and its branches; the step running now is the last to run."""
        await DBOS.cancel_workflow_async(run_id, cancel_children=True)
