"""The step runner: an execution's steps walked inside its durable run, one step at a time.

:class:`ExecutionRunner` is the body of an execution's durable run (and of each fork branch's):
it walks the steps (chains, switches, forks and joins). Each action step runs through
:class:`StepRunner`, which renders the step's input from the scope, resolves its action, checks
the input against the action's schema, calls the action through the
:class:`~servicegrid.integration.actions.ActionInvoker` (whose retry and deadline are the
step's) and writes the step's record once, as its row. A step never raises: a failure is the
record's ``error``, and the run decides what a failed step means.

A step's row is its checkpoint. A run that starts again (after a crash) reads the rows of the
steps that ended and does not run them again: it goes on from the step that was cut off. Every
attempt of a step sends the same ``Idempotency-Key`` (``{execution id}:{step id}``), so a callee
that honours it applies a retried or replayed step once. Writing a step's row also reads the
execution's status: when the execution was cancelled meanwhile, the run stops there.

A fork starts one child run per branch (:meth:`DurableRuns.branches`) and waits for all of them;
their steps join the scope, and the fork's own record holds each branch's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ServiceError
from servicegrid.integration.actions import ActionInvoker
from servicegrid.integration.durable import DurableRuns
from servicegrid.integration.execution_models import (
    ExecutionJob,
    ExecutionStatus,
    ExecutionStepStatus,
    Scope,
    StepRecord,
)
from servicegrid.integration.executions import ExecutionClosed, ExecutionStore
from servicegrid.integration.mapping import MappingError, render, switch_key
from servicegrid.integration.workflow_models import Step

__all__ = ["RUNNING_AFTER", "ExecutionRunner", "StepFailed", "StepRunner"]

_log = logging.getLogger("servicegrid.integration")

RUNNING_AFTER = 0.2
"""Seconds a step runs before its row shows it RUNNING; a quicker step writes its row once."""


class StepFailed(Exception):
    """A step ended FAILED; its record says why."""

    def __init__(self, record: StepRecord) -> None:
        super().__init__(record.error)
        self.record = record


class ExecutionRunner:
    """Runs executions and fork branches as the bodies of their durable runs."""

    def __init__(self, store: ExecutionStore, steps: StepRunner, durable: DurableRuns) -> None:
        self.store = store
        self.steps = steps
        self.durable = durable
        self._new: dict[str, ExecutionJob] = {}

    def expect(self, job: ExecutionJob) -> None:
        """Hand a new execution's job to its run, which then need not read it back."""
        self._new[job.execution_id] = job

    def forget(self, execution_id: str) -> None:
        """Drop a job handed over whose run did not start."""
        self._new.pop(execution_id, None)

    async def run_execution(self, execution_id: str) -> None:
        """The body of an execution's run: every step, then the execution's final status."""
        job = self._new.pop(execution_id, None)
        done = {} if job is not None else await self.store.finished_steps(execution_id)
        if job is None:
            job = await self.store.job(execution_id)
        # RUNNING is written while the first step starts; the final status waits for it
        running = asyncio.ensure_future(self.store.mark_running(execution_id))
        path = _Path(self, job, done, [*done])
        output: Any = None
        error: dict[str, Any] | None = None
        closed = False
        try:
            output = await path.chain(job.graph.entry, None)
        except StepFailed as failed:
            error = {"step": failed.record.id, **(failed.record.error or {})}
        except ExecutionClosed:
            closed = True  # its status was set by whoever closed it
        finally:
            await asyncio.wait([running])
        running.result()
        if closed:
            return
        if error is not None:
            await self.store.finish(execution_id, ExecutionStatus.FAILED, error=error)
        else:
            await self.store.finish(execution_id, ExecutionStatus.COMPLETED, output=output)

    async def run_branch(
        self, execution_id: str, start: str, given_from: str | None, before: list[str]
    ) -> dict[str, Any]:
        """The body of a fork branch's run: its steps, from ``start``.

        Returns which of its steps completed, which failed (or None) and which ran last.
        """
        job = await self.store.job(execution_id)
        done = await self.store.finished_steps(execution_id)
        path = _Path(self, job, done, before)
        try:
            await path.chain(start, given_from)
        except StepFailed as failed:
            return {"failed": failed.record.id, "steps": path.ran, "last": None}
        except ExecutionClosed:
            pass  # the fork's own record finds the execution closed, and stops its run
        return {"failed": None, "steps": path.ran, "last": path.ran[-1] if path.ran else None}


class _Path:
    """One walk through a region of the steps: the main path, or one branch."""

    def __init__(
        self, walk: ExecutionRunner, job: ExecutionJob, done: dict[str, StepRecord], seen: list[str]
    ) -> None:
        self.walk = walk
        self.job = job
        self.done = done
        self.scope = job.scope({step_id: done[step_id].output for step_id in seen})
        self.ran: list[str] = []

    def output_of(self, step_id: str | None) -> Any:
        return self.job.input_data if step_id is None else self.scope["steps"][step_id]["output"]

    async def chain(self, start: str, given_from: str | None) -> Any:
        """Run from ``start`` until a step has no next; the last step's output."""
        current: str | None = start
        previous = given_from
        while current is not None:
            step = self.job.graph.by_id[current]
            given = self.output_of(previous)
            if step.is_fork:
                output = await self.fork(step, given, previous)
            else:
                output = await self.task(step, given)
            self.scope["steps"][step.id] = {"output": output}
            self.ran.append(step.id)
            current = _next_step(step, output)
            previous = step.id
        return self.output_of(previous)

    async def task(self, step: Step, given: Any) -> Any:
        record = self.done.get(step.id)
        if record is None:
            record = await self.walk.steps.run(self.job, step, given, self.scope)
        if not record.completed:
            raise StepFailed(record)
        return record.output

    async def fork(self, step: Step, given: Any, given_from: str | None) -> Any:
        walk, job = self.walk, self.job
        started = walk.steps.now()
        branches = step.fork or []
        results = await walk.durable.branches(
            job.execution_id, step.id, branches, given_from, list(self.scope["steps"])
        )
        ran = [step_id for result in results for step_id in result["steps"]]
        failed_ids = [result["failed"] for result in results if result["failed"] is not None]
        records = await walk.store.step_records(job.execution_id, [*ran, *failed_ids])
        for step_id in ran:
            self.scope["steps"][step_id] = {"output": records[step_id].output}
        self.ran.extend(ran)
        failed = [records[step_id] for step_id in failed_ids]
        outputs = {
            branch: None if result["last"] is None else records[result["last"]].output
            for branch, result in zip(branches, results, strict=True)
        }
        record = StepRecord(
            id=step.id,
            sequence=job.graph.position[step.id],
            service=None,
            action=None,
            started_at=started,
            status=ExecutionStepStatus.FAILED if failed else ExecutionStepStatus.COMPLETED,
            input=given,
            output=None if failed else outputs,
            attempts=1,
            error=(
                {"type": "BranchFailed", "message": f"branch step {failed[0].id!r} failed"}
                if failed
                else None
            ),
        )
        if step.id not in self.done:
            await walk.steps.save(job.execution_id, record)
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


# ---- one step --------------------------------------------------------------------


class StepRunner:
    """Runs action steps and stores their records in ``store``; ``clock`` tells the time."""

    def __init__(
        self, store: ExecutionStore, invoker: ActionInvoker, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._store = store
        self._invoker = invoker
        self._clock = clock

    def now(self) -> datetime:
        """The wall time, as rows store it."""
        return datetime.fromtimestamp(self._clock.wall(), UTC)

    async def run(self, job: ExecutionJob, step: Step, given: Any, scope: Scope) -> StepRecord:
        """Run ``step`` on ``given`` (its input when it maps none) and store its record."""
        record = StepRecord(
            id=step.id,
            sequence=job.graph.position[step.id],
            service=step.service,
            action=step.action,
            started_at=self.now(),
        )

        def count(attempt: int) -> None:
            record.attempts = attempt

        announcement: _Announcement | None = None
        try:
            payload = given if step.input is None else render(step.input, scope)
            record.input = payload
            target = await self._invoker.resolve(step.service or "", step.action or "")
            self._invoker.check_input(target, payload, loc=["input"])
            announcement = _Announcement(self, job.execution_id, record)
            call = await self._invoker.call(
                target,
                payload,
                idempotency_key=f"{job.execution_id}:{step.id}",
                retry=step.retry,
                timeout=step.timeout_seconds,
                headers=_headers(job),
                on_attempt=count,
            )
            record.output = call.output
            record.status = ExecutionStepStatus.COMPLETED
        except Exception as error:  # a step's failure is data, never a crash of the run
            if not isinstance(error, ServiceError | MappingError):
                _log.exception("step %s of %s failed unexpectedly", step.id, job.execution_id)
            record.fail(error)
        if announcement is not None:
            await announcement.settle()
        await self.save(job.execution_id, record)
        return record

    async def save(self, execution_id: str, record: StepRecord) -> None:
        """Stamp the record's end and write it."""
        record.finish(self.now())
        await self._store.save_step(execution_id, record)

    async def announce(self, execution_id: str, record: StepRecord) -> None:
        """Write the record as it stands, while the step still runs."""
        await self._store.save_step(execution_id, dataclasses.replace(record))

    async def pause(self, seconds: float) -> None:
        await self._clock.asleep(seconds)


class _Announcement:
    """Shows a step as RUNNING once it has run for :data:`RUNNING_AFTER` seconds."""

    def __init__(self, runner: StepRunner, execution_id: str, record: StepRecord) -> None:
        self._writing = False
        self._task = asyncio.create_task(self._run(runner, execution_id, record))

    async def _run(self, runner: StepRunner, execution_id: str, record: StepRecord) -> None:
        await runner.pause(RUNNING_AFTER)
        self._writing = True
        with contextlib.suppress(ExecutionClosed):  # the step's own record will say so
            await runner.announce(execution_id, record)

    async def settle(self) -> None:
        """Drop the announcement if it is still waiting; else let its write finish first."""
        if not self._writing:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _headers(job: ExecutionJob) -> dict[str, str]:
    headers = {"X-Execution-ID": job.execution_id}
    for key, header in (("request_id", "X-Request-ID"), ("project_id", "X-Project-ID")):
        value = job.context.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            headers[header] = str(value)
    return headers
