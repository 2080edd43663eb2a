"""The execution engine: what the routes call to start, cancel and resume executions.

An execution is a durable run (:mod:`~servicegrid.integration.durable`) whose body walks the
workflow's steps (:class:`~servicegrid.integration.runner.ExecutionRunner`); each action step is
run by the :class:`~servicegrid.integration.runner.StepRunner`, which calls the action through
the :class:`~servicegrid.integration.actions.ActionInvoker`. Reading top down::

    routes → ExecutionEngine → ExecutionRunner → StepRunner → ActionInvoker

When the service restarts after a crash, :meth:`ExecutionEngine.start` resumes every execution
left unfinished: the steps that completed keep their results, and the step that was cut off runs
again, sending the same ``Idempotency-Key`` (``{execution id}:{step id}``) as before, so the
service it calls can tell. Resuming a FAILED or CANCELLED execution starts a new run that reuses
the results of the steps that completed and runs the rest.
"""

from __future__ import annotations

import logging

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ConflictError
from servicegrid.integration.actions import ActionInvoker
from servicegrid.integration.durable import APP_VERSION, DurableRuns, dbos_system_url
from servicegrid.integration.execution_models import (
    ExecuteRequest,
    Execution,
    ExecutionJob,
    ExecutionStatus,
)
from servicegrid.integration.executions import ExecutionStore
from servicegrid.integration.runner import ExecutionRunner, StepRunner
from servicegrid.integration.workflow_models import StepGraph, Workflow, WorkflowStatus

__all__ = ["APP_VERSION", "ExecutionEngine", "dbos_system_url"]

_log = logging.getLogger("servicegrid.integration")


class ExecutionEngine:
    """Starts, runs, cancels and resumes executions stored in ``executions``.

    Steps call actions through ``invoker``. The durable runs are checkpointed in
    ``system_database_url`` (see :func:`dbos_system_url`); ``executor_id`` names this worker
    among several sharing one PostgreSQL database, and ``poll_interval`` is how often the durable
    engine's background threads poll (and so how long :meth:`stop` may wait). ``clock`` tells
    the time of step records and of retries' backoff.
    """

    def __init__(
        self,
        executions: ExecutionStore,
        invoker: ActionInvoker,
        *,
        system_database_url: str,
        executor_id: str | None = None,
        log_level: str = "WARNING",
        poll_interval: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.executions = executions
        self.durable = DurableRuns(
            system_database_url=system_database_url,
            executor_id=executor_id,
            log_level=log_level,
            poll_interval=poll_interval,
        )
        self.runner = ExecutionRunner(
            executions, StepRunner(executions, invoker, clock=clock), self.durable
        )

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Launch the durable engine (which resumes unfinished runs) and settle the rest.

        Call it on the event loop the service runs on: recovered runs run there.
        """
        await self.durable.launch(self.runner.run_execution, self.runner.run_branch)
        await self.settle_unfinished()

    async def stop(self) -> None:
        """Stop; runs still going are cut off here and resumed by the next start."""
        if cut_off := self.durable.running:
            _log.info("stopping: %d runs cut off; the next start resumes them", cut_off)
        await self.durable.shutdown()

    async def settle_unfinished(self) -> None:
        """Start the runs a crash left unstarted, and record how the others ended."""
        for execution_id, run_id in await self.executions.unfinished():
            state = await self.durable.state(run_id)
            if state is None:
                await self.durable.start(run_id, execution_id)
            elif state.status in ("ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
                error = {"type": "ExecutionError", "message": state.error or state.status}
                await self.executions.finish(execution_id, ExecutionStatus.FAILED, error=error)
            elif state.version != APP_VERSION and state.status in ("PENDING", "ENQUEUED"):
                # DBOS recovers only its own version's runs: this one would wait forever
                error = {
                    "type": "ExecutionError",
                    "message": "started by an earlier version of the service; resume it",
                }
                await self.executions.finish(execution_id, ExecutionStatus.FAILED, error=error)
            elif state.status == "CANCELLED":
                await self.executions.finish(execution_id, ExecutionStatus.CANCELLED)
            elif state.status == "SUCCESS":
                # a run writes its final status before it ends, so this is never expected
                error = {
                    "type": "ExecutionError",
                    "message": "the run ended without recording its result; resume it",
                }
                await self.executions.finish(execution_id, ExecutionStatus.FAILED, error=error)

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
            job = ExecutionJob(
                execution_id=execution.id,
                workflow_id=workflow.id,
                graph=StepGraph(workflow.steps),
                input_data=execution.input_data,
                context=execution.context,
            )
            self.runner.expect(job)
            try:
                await self.durable.start(execution.id, execution.id)
            except BaseException:
                self.runner.forget(execution.id)
                raise
        return execution

    async def cancel(self, execution_id: str) -> Execution:
        """Cancel an unfinished execution; the step running now is the last to run."""
        status, run_id = await self.executions.run_state(execution_id)
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
        await self.durable.cancel(run_id)
        return await self.executions.get(execution_id)

    async def resume(self, execution_id: str) -> Execution:
        """Run a FAILED or CANCELLED execution again from its first step that did not complete."""
        status, _run_id = await self.executions.run_state(execution_id)
        if status not in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
            raise ConflictError(
                f"execution {execution_id} is {status.value}; "
                "only FAILED or CANCELLED executions can be resumed",
                details={"resource_type": "execution", "resource_id": execution_id},
            )
        moment = self.runner.steps.now()
        run_id = f"{execution_id}:resume-{moment.strftime('%Y%m%dT%H%M%S%f')}"
        if not await self.executions.reopen(execution_id, run_id):
            raise ConflictError(
                f"execution {execution_id} changed while resuming; try again",
                details={"resource_type": "execution", "resource_id": execution_id},
            )
        await self.durable.start(run_id, execution_id)
        return await self.executions.get(execution_id)
