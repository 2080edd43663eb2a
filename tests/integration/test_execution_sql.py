"""The execution store's statements on the drivers: rows SQLAlchemy reads unchanged, a SQLite lock
held elsewhere never stalls the event loop, and the WAL is checkpointed off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from servicegrid.integration.db import (
    ExecutionRow,
    ExecutionStepRow,
    create_engine,
    session_factory,
    upgrade_to_head,
)
from servicegrid.integration.execution_sql import (
    ExecutionStatements,
    SqliteStatements,
    open_statements,
)

MOMENT = datetime(2026, 12, 4, 6, 30, 15, 123456, tzinfo=UTC)


def execution_row(execution_id: str = "e1", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": execution_id,
        "workflow_id": "w1",
        "workflow_name": "flow",
        "workflow_version": 2,
        "plan": [{"id": "one", "service": "s", "action": "a"}],
        "status": "PENDING",
        "input_data": {"text": "naïve ✓", "n": [1, 2.5, None]},
        "context": {"request_id": "r"},
        "output": None,
        "error": None,
        "idempotency_key": f"key-{execution_id}",
        "run_id": execution_id,
        "created_at": MOMENT,
        "started_at": None,
        "finished_at": None,
        "updated_at": MOMENT,
    }
    return {**row, **overrides}


def step_row(execution_id: str = "e1", step_id: str = "one", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "execution_id": execution_id,
        "step_id": step_id,
        "sequence": 0,
        "status": "COMPLETED",
        "service": "s",
        "action": "a",
        "input": {"q": 1},
        "output": {"answer": "yes"},
        "attempts": 1,
        "started_at": MOMENT,
        "finished_at": MOMENT + timedelta(milliseconds=3),
        "duration_ms": 3.0,
        "error": None,
    }
    return {**row, **overrides}


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[tuple[Any, ExecutionStatements]]:
    await asyncio.to_thread(upgrade_to_head, db_url)
    engine = create_engine(db_url)
    statements = await open_statements(engine)
    try:
        yield engine, statements
    finally:
        await statements.close()
        await engine.dispose()


async def test_rows_written_on_the_driver_read_the_same_through_sqlalchemy(
    database: tuple[Any, ExecutionStatements],
) -> None:
    engine, statements = database
    assert await statements.insert_execution(execution_row())
    assert not await statements.insert_execution(execution_row("e2", idempotency_key="key-e1"))
    assert await statements.save_step(step_row()) == "PENDING"
    await statements.mark_running("e1", MOMENT + timedelta(seconds=1))
    assert await statements.finish("e1", "COMPLETED", {"out": [1]}, None, MOMENT)
    assert not await statements.finish("e1", "FAILED", None, {"type": "x"}, MOMENT)

    async with session_factory(engine)() as session:
        stored = await session.get(ExecutionRow, "e1")
        step = (await session.scalars(select(ExecutionStepRow))).one()
    assert stored is not None
    assert stored.input_data == execution_row()["input_data"]
    assert stored.output == {"out": [1]}
    assert stored.status == "COMPLETED"
    assert stored.started_at is not None
    assert stored.started_at.replace(tzinfo=UTC) == MOMENT + timedelta(seconds=1)
    assert step.output == {"answer": "yes"}
    assert step.finished_at is not None
    assert step.finished_at.replace(tzinfo=UTC) == MOMENT + timedelta(milliseconds=3)

    read = await statements.execution("e1")
    assert read is not None
    assert read["created_at"] == MOMENT
    assert read["input_data"] == execution_row()["input_data"]
    assert await statements.execution_by_key("key-e1") == read
    assert await statements.execution("nope") is None
    assert [row["step_id"] for row in await statements.steps("e1")] == ["one"]


async def test_writing_a_step_says_the_execution_was_closed_meanwhile(
    database: tuple[Any, ExecutionStatements],
) -> None:
    _engine, statements = database
    await statements.insert_execution(execution_row())
    await statements.finish("e1", "CANCELLED", None, {"type": "Cancelled"}, MOMENT)
    assert await statements.save_step(step_row()) == "CANCELLED"
    assert await statements.save_step(step_row("gone")) is None


async def test_only_steps_that_ended_count_as_done(
    database: tuple[Any, ExecutionStatements],
) -> None:
    _engine, statements = database
    await statements.insert_execution(execution_row())
    await statements.save_step(step_row(step_id="a"))
    await statements.save_step(step_row(step_id="b", status="FAILED", error={"type": "E"}))
    await statements.save_step(step_row(step_id="c", status="RUNNING", finished_at=None))
    done = {row["step_id"]: row["status"] for row in await statements.final_steps("e1")}
    assert done == {"a": "COMPLETED", "b": "FAILED"}


async def test_a_lock_held_elsewhere_waits_in_a_thread_not_on_the_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    statements = SqliteStatements(tmp_path / "x.db")
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute(
            "INSERT INTO executions (id, workflow_id, workflow_name, workflow_version, "
            "plan, status, input_data, context, run_id, created_at, updated_at) "
            "VALUES ('held', 'w', 'w', 1, '[]', 'PENDING', '{}', '{}', 'held', "
            "'2026-12-04 00:00:00.000000', '2026-12-04 00:00:00.000000')"
        )
        writing = asyncio.create_task(statements.insert_execution(execution_row()))
        ticks = 0
        while not writing.done() and ticks < 20:
            await asyncio.sleep(0.01)  # the loop goes on while the write waits for the lock
            ticks += 1
        assert ticks == 20
        assert not writing.done()
        holder.execute("COMMIT")
        assert await writing
        assert await statements.execution("held") is not None
        assert await statements.execution("e1") is not None
    finally:
        holder.close()
        await statements.close()


async def test_the_wal_is_checkpointed_off_the_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    statements = SqliteStatements(tmp_path / "x.db", checkpoint_every=3)
    try:
        for n in range(3):
            await statements.insert_execution(execution_row(f"e{n}"))
        checkpoint = statements._checkpoint
        assert checkpoint is not None  # started by the third write, in a thread
        await checkpoint
        assert statements._checkpoint is None
        await statements.insert_execution(execution_row("e3"))
        probe = sqlite3.connect(tmp_path / "x.db")
        assert probe.execute("SELECT count(*) FROM executions").fetchone() == (4,)
        probe.close()
    finally:
        await statements.close()


async def test_an_in_memory_database_is_refused() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    with pytest.raises(ValueError, match="SQLite file"):
        await open_statements(engine)
    await engine.dispose()
