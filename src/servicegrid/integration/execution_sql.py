"""The execution store's hot statements, run on the database drivers themselves.

Every execution inserts its row, writes one row per step, stamps its start and its end, and is
polled while it runs: a handful of statements each time. Through SQLAlchemy's async layer each
costs about half a millisecond of CPU (a greenlet switch, result processing, and for aiosqlite a
hop to its thread per call), which made them the largest share of an execution's cost. So these
few statements run on the drivers directly, and the rest of the store (listing, the registry,
retention, migrations) stays on SQLAlchemy, which reads these rows unchanged:

- **SQLite**: :mod:`sqlite3` on the event loop's own thread. In WAL mode with
  ``synchronous=NORMAL`` a write takes tens of microseconds, less than one hop to a thread. The
  loop never waits for the file's lock: when another connection holds it (the registry's writes,
  a migration, another process), the statement goes to a thread that waits for the lock. The WAL
  is checkpointed in a thread, never by a write on the loop.
- **PostgreSQL**: an asyncpg pool, JSON columns encoded by the pool's codec.

Rows are written as SQLAlchemy writes them: on SQLite, moments as ``YYYY-MM-DD HH:MM:SS.ffffff``
in UTC and JSON as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from servicegrid.integration.db import ExecutionRow, ExecutionStepRow
from servicegrid.integration.execution_models import ExecutionStatus, ExecutionStepStatus

__all__ = [
    "EXECUTION_COLUMNS",
    "STEP_COLUMNS",
    "ExecutionStatements",
    "PostgresStatements",
    "Row",
    "SqliteStatements",
    "open_statements",
]

# the columns, and which hold JSON or moments, as the tables declare them
EXECUTION_COLUMNS = tuple(column.name for column in ExecutionRow.__table__.columns)
STEP_COLUMNS = tuple(column.name for column in ExecutionStepRow.__table__.columns)
_COLUMNS = [*ExecutionRow.__table__.columns, *ExecutionStepRow.__table__.columns]
_JSON = frozenset(column.name for column in _COLUMNS if isinstance(column.type, JSON))
_MOMENTS = frozenset(column.name for column in _COLUMNS if isinstance(column.type, DateTime))
_STEP_KEY = ("execution_id", "step_id")
_OPEN = f"('{ExecutionStatus.PENDING.value}', '{ExecutionStatus.RUNNING.value}')"
_FINAL_STEPS = f"('{ExecutionStepStatus.COMPLETED.value}', '{ExecutionStepStatus.FAILED.value}')"

Row = dict[str, Any]
"""A row by column name: JSON values as Python objects, moments as aware UTC datetimes."""
_T = TypeVar("_T")


def _statements(mark: Callable[[int], str]) -> dict[str, str]:
    """The SQL of every statement, with ``mark(n)`` as the n-th parameter's placeholder."""

    def marks(count: int) -> str:
        return ", ".join(mark(n) for n in range(1, count + 1))

    update_step = ", ".join(
        f"{column} = excluded.{column}" for column in STEP_COLUMNS if column not in _STEP_KEY
    )
    execution = ", ".join(EXECUTION_COLUMNS)
    step = ", ".join(STEP_COLUMNS)
    return {
        "insert_execution": f"INSERT INTO executions ({execution}) "
        f"VALUES ({marks(len(EXECUTION_COLUMNS))})",
        "mark_running": f"UPDATE executions SET status = 'RUNNING', "
        f"started_at = COALESCE(started_at, {mark(1)}), updated_at = {mark(1)} "
        f"WHERE id = {mark(2)} AND status IN {_OPEN}",
        "finish": f"UPDATE executions SET status = {mark(1)}, output = {mark(2)}, "
        f"error = {mark(3)}, finished_at = {mark(4)}, updated_at = {mark(4)} "
        f"WHERE id = {mark(5)} AND status IN {_OPEN}",
        "save_step": f"INSERT INTO execution_steps ({step}) VALUES ({marks(len(STEP_COLUMNS))}) "
        f"ON CONFLICT (execution_id, step_id) DO UPDATE SET {update_step}",
        "status": f"SELECT status FROM executions WHERE id = {mark(1)}",
        "execution": f"SELECT {execution} FROM executions WHERE id = {mark(1)}",
        "execution_by_key": f"SELECT {execution} FROM executions WHERE idempotency_key = {mark(1)}",
        "steps": f"SELECT {step} FROM execution_steps WHERE execution_id = {mark(1)} "
        "ORDER BY started_at, sequence",
        "final_steps": f"SELECT {step} FROM execution_steps WHERE execution_id = {mark(1)} "
        f"AND status IN {_FINAL_STEPS}",
    }


class ExecutionStatements:
    """The hot statements of :class:`~servicegrid.integration.executions.ExecutionStore`.

    Rows go in and come out as dicts keyed by column, with JSON values as Python objects and
    moments as aware UTC datetimes.
    """

    async def insert_execution(self, row: Row) -> bool:
        """Insert an execution's row; False if its idempotency key is taken already."""
        raise NotImplementedError

    async def mark_running(self, execution_id: str, now: datetime) -> None:
        """PENDING → RUNNING, stamping the start once."""
        raise NotImplementedError

    async def finish(
        self, execution_id: str, status: str, output: Any, error: Any, now: datetime
    ) -> bool:
        """Set a final status unless the execution has one; True if it was set."""
        raise NotImplementedError

    async def save_step(self, row: Row) -> str | None:
        """Insert or replace a step's row; the execution's status after (None if it is gone)."""
        raise NotImplementedError

    async def execution(self, execution_id: str) -> Row | None:
        raise NotImplementedError

    async def execution_by_key(self, idempotency_key: str) -> Row | None:
        raise NotImplementedError

    async def steps(self, execution_id: str) -> list[Row]:
        """Every step row of the execution, in the order they started."""
        raise NotImplementedError

    async def final_steps(self, execution_id: str) -> list[Row]:
        """The rows of the steps that ended (COMPLETED or FAILED)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


# ---- SQLite ------------------------------------------------------------------------


def _sqlite_moment(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_value(column: str, value: Any) -> Any:
    if column in _JSON:
        return json.dumps(value)
    if column in _MOMENTS:
        return _sqlite_moment(value)
    return value


def _sqlite_row(columns: Sequence[str], values: Sequence[Any]) -> Row:
    row: Row = {}
    for column, value in zip(columns, values, strict=True):
        if value is not None and column in _JSON:
            value = json.loads(value)
        elif value is not None and column in _MOMENTS:
            value = datetime.fromisoformat(value).replace(tzinfo=UTC)
        row[column] = value
    return row


def _busy(error: sqlite3.OperationalError) -> bool:
    return error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteStatements(ExecutionStatements):
    """The statements on the SQLite file at ``path``, on the event loop's thread.

    ``checkpoint_every`` writes, the WAL is checkpointed in a thread (passively: writers go on).
    ``busy_seconds`` is how long a statement handed to a thread waits for the file's lock.
    """

    def __init__(
        self, path: str | Path, *, checkpoint_every: int = 500, busy_seconds: float = 30.0
    ) -> None:
        self._path = str(path)
        self._busy_ms = int(busy_seconds * 1000)
        self._sql = _statements(lambda n: f"?{n}")
        self._inline = self._connect(busy_ms=0)
        self._inline.execute("PRAGMA journal_mode=WAL")
        # the loop's connection never checkpoints: a checkpoint syncs the file
        self._inline.execute("PRAGMA wal_autocheckpoint=0")
        self._waiting: sqlite3.Connection | None = None
        self._waiting_lock = asyncio.Lock()
        self._checkpoint_every = checkpoint_every
        self._writes = 0
        self._checkpoint: asyncio.Task[None] | None = None

    def _connect(self, *, busy_ms: int) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={busy_ms}")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    async def _run(self, work: Callable[[sqlite3.Connection], _T], *, writes: bool) -> _T:
        result = await self._inline_or_waiting(work)
        if writes:
            self._wrote()
        return result

    async def _inline_or_waiting(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if not self._waiting_lock.locked():
            try:
                return work(self._inline)
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise
        async with self._waiting_lock:
            if self._waiting is None:
                self._waiting = self._connect(busy_ms=self._busy_ms)
            return await asyncio.to_thread(work, self._waiting)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes >= self._checkpoint_every and self._checkpoint is None:
            self._writes = 0
            self._checkpoint = asyncio.get_running_loop().create_task(self._checkpoint_wal())

    async def _checkpoint_wal(self) -> None:
        def checkpoint() -> None:
            connection = self._connect(busy_ms=self._busy_ms)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()

        try:
            await asyncio.to_thread(checkpoint)
        finally:
            self._checkpoint = None

    async def _write(self, sql: str, values: Sequence[Any]) -> int:
        return await self._run(lambda c: c.execute(sql, values).rowcount, writes=True)

    async def _rows(self, sql: str, values: Sequence[Any], columns: Sequence[str]) -> list[Row]:
        found = await self._run(lambda c: c.execute(sql, values).fetchall(), writes=False)
        return [_sqlite_row(columns, values) for values in found]

    async def insert_execution(self, row: Row) -> bool:
        values = [_sqlite_value(column, row[column]) for column in EXECUTION_COLUMNS]
        try:
            await self._write(self._sql["insert_execution"], values)
        except sqlite3.IntegrityError:
            return False
        return True

    async def mark_running(self, execution_id: str, now: datetime) -> None:
        await self._write(self._sql["mark_running"], [_sqlite_moment(now), execution_id])

    async def finish(
        self, execution_id: str, status: str, output: Any, error: Any, now: datetime
    ) -> bool:
        values = [status, json.dumps(output), json.dumps(error), _sqlite_moment(now), execution_id]
        return bool(await self._write(self._sql["finish"], values))

    async def save_step(self, row: Row) -> str | None:
        values = [_sqlite_value(column, row[column]) for column in STEP_COLUMNS]
        save, status = self._sql["save_step"], self._sql["status"]

        def work(connection: sqlite3.Connection) -> str | None:
            connection.execute(save, values)
            found = connection.execute(status, [row["execution_id"]]).fetchone()
            return None if found is None else str(found[0])

        return await self._run(work, writes=True)

    async def execution(self, execution_id: str) -> Row | None:
        rows = await self._rows(self._sql["execution"], [execution_id], EXECUTION_COLUMNS)
        return rows[0] if rows else None

    async def execution_by_key(self, idempotency_key: str) -> Row | None:
        rows = await self._rows(self._sql["execution_by_key"], [idempotency_key], EXECUTION_COLUMNS)
        return rows[0] if rows else None

    async def steps(self, execution_id: str) -> list[Row]:
        return await self._rows(self._sql["steps"], [execution_id], STEP_COLUMNS)

    async def final_steps(self, execution_id: str) -> list[Row]:
        return await self._rows(self._sql["final_steps"], [execution_id], STEP_COLUMNS)

    async def close(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        async with self._waiting_lock:
            if self._waiting is not None:
                self._waiting.close()
                self._waiting = None
        self._inline.close()


# ---- PostgreSQL --------------------------------------------------------------------


async def _json_codecs(connection: Any) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


class PostgresStatements(ExecutionStatements):
    """The statements on an asyncpg pool (see :meth:`connect`)."""

    def __init__(self, pool: Any, *, unique_violation: type[Exception]) -> None:
        self._pool = pool
        self._unique_violation = unique_violation
        self._sql = _statements(lambda n: f"${n}")
        self._sql["save_step"] = (
            f"WITH saved AS ({self._sql['save_step']} RETURNING 1) "
            f"SELECT status FROM executions WHERE id = ${STEP_COLUMNS.index('execution_id') + 1}"
        )

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10) -> PostgresStatements:
        """A pool of at most ``max_size`` connections to ``dsn`` (a ``postgresql://`` URL)."""
        import asyncpg  # type: ignore[import-untyped]

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=_json_codecs)
        return cls(pool, unique_violation=asyncpg.UniqueViolationError)

    async def _rows(self, sql: str, *values: Any) -> list[Row]:
        return [dict(record) for record in await self._pool.fetch(sql, *values)]

    async def insert_execution(self, row: Row) -> bool:
        try:
            await self._pool.execute(
                self._sql["insert_execution"], *(row[column] for column in EXECUTION_COLUMNS)
            )
        except self._unique_violation:
            return False
        return True

    async def mark_running(self, execution_id: str, now: datetime) -> None:
        await self._pool.execute(self._sql["mark_running"], now, execution_id)

    async def finish(
        self, execution_id: str, status: str, output: Any, error: Any, now: datetime
    ) -> bool:
        result = await self._pool.execute(
            self._sql["finish"], status, output, error, now, execution_id
        )
        return str(result) != "UPDATE 0"

    async def save_step(self, row: Row) -> str | None:
        status = await self._pool.fetchval(
            self._sql["save_step"], *(row[column] for column in STEP_COLUMNS)
        )
        return None if status is None else str(status)

    async def execution(self, execution_id: str) -> Row | None:
        rows = await self._rows(self._sql["execution"], execution_id)
        return rows[0] if rows else None

    async def execution_by_key(self, idempotency_key: str) -> Row | None:
        rows = await self._rows(self._sql["execution_by_key"], idempotency_key)
        return rows[0] if rows else None

    async def steps(self, execution_id: str) -> list[Row]:
        return await self._rows(self._sql["steps"], execution_id)

    async def final_steps(self, execution_id: str) -> list[Row]:
        return await self._rows(self._sql["final_steps"], execution_id)

    async def close(self) -> None:
        await self._pool.close()


async def open_statements(engine: AsyncEngine) -> ExecutionStatements:
    """The statements for the database ``engine`` is bound to (SQLite file or PostgreSQL)."""
    url = make_url(engine.url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ValueError("executions need a SQLite file, not an in-memory database")
        return SqliteStatements(url.database or "")
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return await PostgresStatements.connect(dsn)
    raise ValueError(f"unsupported database for executions: {url.get_backend_name()}")
