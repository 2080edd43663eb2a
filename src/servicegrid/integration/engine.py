"""Durable executions on DBOS: an execution is a DBOS workflow, each step a DBOS step.

DBOS checkpoints every step's result in its system database (SQLite next to the service's
database by default, the same PostgreSQL database otherwise). When the service restarts after a
crash, :meth:`ExecutionEngine.start` launches DBOS, which resumes every unfinished execution: a
step whose result was checkpointed returns that result without running again, and the step that
was cut off runs again from its start. Such a step sends the same ``Idempotency-Key``
(``{execution id}:{step id}``) as before, so the service it calls can tell.

A fork starts one child workflow per branch (ids derived from the parent's, so a replay finds
them) and waits for all of them. Resuming a failed execution starts a new run that reuses the
results of the steps that completed and runs the rest.

DBOS keeps one instance per process, so one engine runs per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID
from sqlalchemy import event
from sqlalchemy.engine import make_url

from servicegrid.errors import ConflictError, ServiceError
from servicegrid.integration.actions import ActionInvoker
from servicegrid.integration.execution_models import (
    ExecuteRequest,
    Execution,
    ExecutionStatus,
    ExecutionStepStatus,
)
from servicegrid.integration.executions import ExecutionStore, StepRecord
from servicegrid.integration.mapping import MappingError, render, switch_key
from servicegrid.integration.rows import utcnow
from servicegrid.integration.workflow_graph import StepGraph
from servicegrid.integration.workflow_models import Step, Workflow, WorkflowStatus

__all__ = ["APP_VERSION", "ExecutionEngine", "dbos_system_url"]

_log = logging.getLogger("servicegrid.integration")

# DBOS recovers only workflows of the application version that started them: keep it fixed
# while the workflow functions below keep their meaning.
APP_VERSION = "servicegrid-executions-1"

# a step running longer than this gets its RUNNING row before its final one
RUNNING_AFTER = 0.2

_current: ExecutionEngine | None = None


def _engine() -> ExecutionEngine:
    if _current is None:
        raise RuntimeError("no execution engine is running in this process")
    return _current


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


class StepFailed(Exception):
    """A step ended FAILED; its record says why."""

    def __init__(self, record: StepRecord) -> None:
        super().__init__(record.get("error"))
        self.record = record


def _error_json(error: BaseException) -> dict[str, Any]:
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


Job = dict[str, Any]
"""What a run needs, kept with it by DBOS: ``plan`` (the steps), ``input_data``, ``context``,
``workflow_id``."""


def _graph(job: Job) -> StepGraph:
    return StepGraph([Step.model_validate(step) for step in job["plan"]])


@DBOS.workflow(name="servicegrid.execution")
async def _run_execution(execution_id: str, job: Job, reuse: dict[str, StepRecord]) -> Any:
    engine = _engine()
    with engine.running_here():
        return await engine.run(execution_id, job, reuse)


@DBOS.workflow(name="servicegrid.branch")
async def _run_branch(
    execution_id: str,
    job: Job,
    start: str,
    given: Any,
    scope: dict[str, Any],
    reuse: dict[str, StepRecord],
) -> dict[str, Any]:
    engine = _engine()
    run = _Run(engine, execution_id, job, scope, reuse)
    before = set(scope["steps"])
    try:
        with engine.running_here():
            output = await run.chain(start, given)
    except StepFailed as failed:
        return {"failed": failed.record, "steps": _new_steps(run.scope, before)}
    return {"failed": None, "output": output, "steps": _new_steps(run.scope, before)}


def _new_steps(scope: dict[str, Any], before: set[str]) -> dict[str, Any]:
    return {key: value for key, value in scope["steps"].items() if key not in before}


class _Run:
    """Walks the steps of one execution (or one branch) inside a DBOS workflow."""

    def __init__(
        self,
        engine: ExecutionEngine,
        execution_id: str,
        job: Job,
        scope: dict[str, Any],
        reuse: dict[str, StepRecord],
    ) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self.job = job
        self.graph = _graph(job)
        self.scope = scope
        self.reuse = reuse
        self.sequence = {step.id: index for index, step in enumerate(self.graph.steps)}

    async def chain(self, start: str, given: Any) -> Any:
        current: str | None = start
        previous = given
        while current is not None:
            step = self.graph.by_id[current]
            output = await (
                self.fork(step, previous) if step.is_fork else self.task(step, previous)
            )
            self.scope["steps"][step.id] = {"output": output}
            current = _next_step(step, output)
            previous = output
        return previous

    async def task(self, step: Step, given: Any) -> Any:
        record = self.reuse.get(step.id)
        if record is None:
            record = await DBOS.run_step_async(
                {"name": f"step:{step.id}"},
                self.engine.run_task,
                self.execution_id,
                step,
                given,
                self.scope,
                self.sequence[step.id],
            )
        if record["status"] != ExecutionStepStatus.COMPLETED.value:
            raise StepFailed(record)
        return record["output"]

    async def fork(self, step: Step, given: Any) -> Any:
        record = self.reuse.get(step.id)
        if record is not None:
            return record["output"]
        started = utcnow()
        run_id = DBOS.workflow_id
        handles = []
        for branch in step.fork or []:
            with SetWorkflowID(f"{run_id}/{step.id}/{branch}"):
                handles.append(
                    await DBOS.start_workflow_async(
                        _run_branch,
                        self.execution_id,
                        self.job,
                        branch,
                        given,
                        self.scope,
                        self.reuse,
                    )
                )
        results: list[dict[str, Any]] = [await handle.get_result() for handle in handles]
        for result in results:
            self.scope["steps"].update(result["steps"])
        failed = [result["failed"] for result in results if result["failed"] is not None]
        outputs = {
            branch: result.get("output")
            for branch, result in zip(step.fork or [], results, strict=True)
        }
        record = {
            "id": step.id,
            "service": None,
            "action": None,
            "status": (
                ExecutionStepStatus.FAILED if failed else ExecutionStepStatus.COMPLETED
            ).value,
            "input": given,
            "output": None if failed else outputs,
            "attempts": 1,
            "started_at": started.isoformat(),
            "error": (
                {"type": "BranchFailed", "message": f"branch step {failed[0]['id']!r} failed"}
                if failed
                else None
            ),
        }
        await DBOS.run_step_async(
            {"name": f"fork:{step.id}"},
            self.engine.save_record,
            self.execution_id,
            self.sequence[step.id],
            record,
            started,
        )
        if failed:
            raise StepFailed(failed[0])
        return outputs


def _next_step(step: Step, output: Any) -> str | None:
    if step.next is None or isinstance(step.next, str):
        return step.next
    key = switch_key(output, step.next.on)
    if key is not None and key in step.next.cases:
        return step.next.cases[key]
    return step.next.default


class ExecutionEngine:
    """Starts, runs, cancels and resumes executions; owns the process's DBOS instance."""

    def __init__(
        self,
        executions: ExecutionStore,
        invoker: ActionInvoker,
        *,
        system_database_url: str,
        executor_id: str | None = None,
        log_level: str = "WARNING",
        poll_interval: float = 1.0,
    ) -> None:
        self.executions = executions
        self.poll_interval = poll_interval
        self.invoker = invoker
        self.system_database_url = system_database_url
        self.executor_id = executor_id
        self.log_level = log_level
        self._launched = False
        self._running: set[asyncio.Task[Any]] = set()

    @contextlib.contextmanager
    def running_here(self) -> Iterator[None]:
        """Count the current task as a run of this engine while the block lasts."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Launch DBOS (which resumes unfinished runs) and start runs a crash left unstarted.

        Call it on the event loop the service runs on: DBOS runs recovered workflows there.
        """
        global _current
        if _current is not None and _current is not self:
            raise RuntimeError("an execution engine already runs in this process")
        _current = self
        config: DBOSConfig = {
            "name": "servicegrid-integration",
            "system_database_url": self.system_database_url,
            "application_version": APP_VERSION,
            "log_level": self.log_level,
            # how often DBOS's background threads look for work; also how long stop() waits
            "notification_listener_polling_interval_sec": self.poll_interval,
            "scheduler_polling_interval_sec": self.poll_interval,
        }
        engine = _system_engine(self.system_database_url)
        if engine is not None:
            config["system_database_engine"] = engine
        if self.executor_id:
            config["executor_id"] = self.executor_id
        DBOS(config=config)
        DBOS.launch()
        self._launched = True
        await self._settle_unfinished()

    async def stop(self) -> None:
        """Stop DBOS; runs still going are cut off here and resumed by the next start."""
        global _current
        running = [task for task in self._running if not task.done()]
        if running:
            _log.info("stopping: %d runs cut off; the next start resumes them", len(running))
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._launched:
            await asyncio.to_thread(DBOS.destroy, destroy_registry=False)
            self._launched = False
        if _current is self:
            _current = None

    async def _settle_unfinished(self) -> None:
        for execution_id, run_id in await self.executions.unfinished():
            status = await DBOS.get_workflow_status_async(run_id)
            if status is None:
                reuse = (
                    {}
                    if run_id == execution_id
                    else await self.executions.completed_steps(execution_id)
                )
                await self._start_run(execution_id, run_id, await self._job(execution_id), reuse)
            elif status.status in ("ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
                error = {"type": "ExecutionError", "message": str(status.error or status.status)}
                await self.executions.finish(execution_id, ExecutionStatus.FAILED, error=error)
            elif status.status == "CANCELLED":
                await self.executions.finish(execution_id, ExecutionStatus.CANCELLED)
            elif status.status == "SUCCESS":
                await self.executions.finish(
                    execution_id, ExecutionStatus.COMPLETED, output=status.output
                )

    async def _job(self, execution_id: str) -> Job:
        plan, row = await self.executions.plan(execution_id)
        return {
            "plan": plan,
            "input_data": row.input_data,
            "context": row.context,
            "workflow_id": row.workflow_id,
        }

    async def _start_run(
        self, execution_id: str, run_id: str, job: Job, reuse: dict[str, StepRecord]
    ) -> None:
        with SetWorkflowID(run_id):
            await DBOS.start_workflow_async(_run_execution, execution_id, job, reuse)

    # ---- API ---------------------------------------------------------------------

    async def execute(
        self, workflow: Workflow, request: ExecuteRequest, *, idempotency_key: str | None = None
    ) -> Execution:
        """Record a PENDING execution of ``workflow`` and start it; returns at once."""
        if workflow.status is not WorkflowStatus.ACTIVE:
            raise ConflictError(
                f"workflow {workflow.name!r} is {workflow.status.value}; only ACTIVE ones run",
                details={"resource_type": "workflow", "resource_id": workflow.id},
            )
        execution, created = await self.executions.create(
            workflow, request, idempotency_key=idempotency_key
        )
        if created:
            job = {
                "plan": [step.model_dump(mode="json") for step in workflow.steps],
                "input_data": execution.input_data,
                "context": execution.context,
                "workflow_id": workflow.id,
            }
            await self._start_run(execution.id, execution.id, job, {})
        return execution

    async def cancel(self, execution_id: str) -> Execution:
        """Cancel an unfinished execution; the step running now is the last to run."""
        _plan, row = await self.executions.plan(execution_id)
        status = ExecutionStatus(row.status)
        if status.finished:
            raise ConflictError(
                f"execution {execution_id} is already {status.value}",
                details={"resource_type": "execution", "resource_id": execution_id},
            )
        await self.executions.finish(
            execution_id,
            ExecutionStatus.CANCELLED,
            error={"type": "Cancelled", "message": "cancelled on request"},
        )
        await DBOS.cancel_workflow_async(row.run_id, cancel_children=True)
        return await self.executions.get(execution_id)

    async def resume(self, execution_id: str) -> Execution:
        """Run a FAILED or CANCELLED execution again from its first step that did not complete."""
        execution = await self.executions.get(execution_id)
        if execution.status not in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
            raise ConflictError(
                f"execution {execution_id} is {execution.status.value}; "
                "only FAILED or CANCELLED executions can be resumed",
                details={"resource_type": "execution", "resource_id": execution_id},
            )
        run_id = f"{execution_id}:resume-{utcnow().strftime('%Y%m%dT%H%M%S%f')}"
        if not await self.executions.reopen(execution_id, run_id):
            raise ConflictError(
                f"execution {execution_id} changed while resuming; try again",
                details={"resource_type": "execution", "resource_id": execution_id},
            )
        reuse = await self.executions.completed_steps(execution_id)
        await self._start_run(execution_id, run_id, await self._job(execution_id), reuse)
        return await self.executions.get(execution_id)

    # ---- inside the durable workflow ------------------------------------------------

    async def run(self, execution_id: str, job: Job, reuse: dict[str, StepRecord]) -> Any:
        scope: dict[str, Any] = {
            "input": job["input_data"],
            "context": job["context"],
            "execution": {"id": execution_id, "workflow_id": job["workflow_id"]},
            "steps": {step_id: {"output": record["output"]} for step_id, record in reuse.items()},
        }
        # RUNNING is written while the first step starts; the final status waits for it
        running = asyncio.ensure_future(self.executions.mark_running(execution_id))
        run = _Run(self, execution_id, job, scope, reuse)
        output: Any = None
        error: dict[str, Any] | None = None
        try:
            output = await run.chain(run.graph.entry, job["input_data"])
        except StepFailed as failed:
            error = {"step": failed.record["id"], **(failed.record.get("error") or {})}
        finally:
            await asyncio.wait([running])
        running.result()
        if error is not None:
            await self.executions.finish(execution_id, ExecutionStatus.FAILED, error=error)
        else:
            await self.executions.finish(execution_id, ExecutionStatus.COMPLETED, output=output)
        return output

    async def run_task(
        self,
        execution_id: str,
        step: Step,
        given: Any,
        scope: dict[str, Any],
        sequence: int,
    ) -> StepRecord:
        """One action step, start to end: the body of a DBOS step. Never raises."""
        started = utcnow()
        record: StepRecord = {
            "id": step.id,
            "service": step.service,
            "action": step.action,
            "status": ExecutionStepStatus.RUNNING.value,
            "input": None,
            "output": None,
            "attempts": 0,
            "started_at": started.isoformat(),
            "error": None,
        }

        def count(attempt: int) -> None:
            record["attempts"] = attempt

        announce: _Announcement | None = None
        try:
            payload = given if step.input is None else render(step.input, scope)
            record["input"] = payload
            target = await self.invoker.resolve(step.service or "", step.action or "")
            self.invoker.check_input(target, payload, loc=["input"])
            announce = _Announcement(self.executions, execution_id, sequence, record)
            call = await self.invoker.call(
                target,
                payload,
                idempotency_key=f"{execution_id}:{step.id}",
                retry=step.retry,
                timeout=step.timeout_seconds,
                headers=_headers(execution_id, scope),
                on_attempt=count,
            )
            record["status"] = ExecutionStepStatus.COMPLETED.value
            record["output"] = call.output
        except Exception as error:  # a step's failure is data, never a crash of the run
            if not isinstance(error, ServiceError | MappingError):
                _log.exception("step %s of execution %s failed unexpectedly", step.id, execution_id)
            record["status"] = ExecutionStepStatus.FAILED.value
            record["error"] = _error_json(error)
        if announce is not None:
            await announce.settle()
        await self.save_record(execution_id, sequence, record, started)
        return record

    async def save_record(
        self, execution_id: str, sequence: int, record: StepRecord, started: datetime
    ) -> StepRecord:
        finished = utcnow()
        record["finished_at"] = finished.isoformat()
        record["duration_ms"] = (finished - started).total_seconds() * 1000
        await self.executions.save_step(execution_id, sequence, record)
        return record


class _Announcement:
    """Shows a step as RUNNING once it has run for ``RUNNING_AFTER`` seconds.

    Most steps end sooner; then only their final row is written, one write per step.
    """

    def __init__(
        self, executions: ExecutionStore, execution_id: str, sequence: int, record: StepRecord
    ) -> None:
        self._writing = False
        self._task = asyncio.create_task(self._run(executions, execution_id, sequence, record))

    async def _run(
        self, executions: ExecutionStore, execution_id: str, sequence: int, record: StepRecord
    ) -> None:
        await asyncio.sleep(RUNNING_AFTER)
        self._writing = True
        await executions.save_step(execution_id, sequence, dict(record))

    async def settle(self) -> None:
        """Drop the announcement if it is still waiting; else let its write finish first."""
        if not self._writing:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _headers(execution_id: str, scope: dict[str, Any]) -> dict[str, str]:
    headers = {"X-Execution-ID": execution_id}
    context = scope.get("context") or {}
    for key, header in (("request_id", "X-Request-ID"), ("project_id", "X-Project-ID")):
        value = context.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            headers[header] = str(value)
    return headers
