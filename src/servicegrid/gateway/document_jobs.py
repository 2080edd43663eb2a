"""Document conversion jobs, kept where every gateway replica sees them.

SQLite by default (``document_jobs.db`` beside the SQLite file ``DATABASE_URL``
names, so ``.servicegrid/`` unless told otherwise), PostgreSQL through asyncpg
when ``DATABASE_URL`` is a ``postgresql://`` URL. A job lives for
``SERVICEGRID_DOCUMENT_JOB_TTL`` seconds from its creation, whatever its status;
older ones are deleted on each :meth:`DocumentJobs.create` and by
:meth:`DocumentJobs.purge_expired`, and are not found before that.

The conversion itself runs in a task the store owns (:meth:`DocumentJobs.submit`),
so :meth:`DocumentJobs.aclose` can cancel what is still running.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from servicegrid.client_state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import (
    ClientStateError,
    ResourceNotFoundError,
    ServiceError,
    ServiceUnavailableError,
)
from servicegrid.settings import Settings

__all__ = ["DocumentJob", "DocumentJobs", "JobStatus", "Work"]

_log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[Mapping[str, Any]]]
"""The conversion a job runs: its JSON-ready result, or a raised error."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS document_jobs ("
    " id TEXT PRIMARY KEY, status TEXT NOT NULL, filename TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,"
    " result TEXT, error TEXT)",
    "CREATE INDEX IF NOT EXISTS document_jobs_created ON document_jobs (created_at)",
)
_COLUMNS = "id, status, filename, created_at, updated_at, result, error"
_SQLITE_FILE = "document_jobs.db"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DocumentJob:
    """One job; times are epoch seconds, ``error`` is ``{"message", "type", "http_status"}``."""

    id: str
    status: JobStatus
    filename: str
    created_at: float
    updated_at: float
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> DocumentJob:
        id_, status, filename, created_at, updated_at, result, error = row
        return cls(
            id=str(id_),
            status=JobStatus(status),
            filename=str(filename),
            created_at=float(created_at),
            updated_at=float(updated_at),
            result=None if result is None else json.loads(result),
            error=None if error is None else json.loads(error),
        )


class _Backend(Protocol):
    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement written with ``?`` placeholders; the rows it changed."""
        ...

    async def fetchone(self, sql: str, *args: object) -> tuple[Any, ...] | None: ...

    async def aclose(self) -> None: ...


class DocumentJobs:
    """The shared job store; ``database`` is a SQLite file path or a ``postgresql://`` URL."""

    def __init__(
        self, database: str | Path, *, ttl: float = 3600.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.database = str(database)
        self.ttl = ttl
        self._clock = clock
        self._state = ClientState.UNOPENED
        self._backend: _Backend | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> DocumentJobs:
        """The store ``DATABASE_URL`` and ``SERVICEGRID_DOCUMENT_JOB_TTL`` describe.

        Raises ValueError for a URL that is neither SQLite nor PostgreSQL.
        """
        return cls(database_for(settings.database_url), ttl=settings.document_job_ttl, clock=clock)

    async def open(self) -> None:
        """Connect and create the table if it is missing.

        Raises RuntimeError when a PostgreSQL URL is given and asyncpg is not installed.
        """
        if self._state is not ClientState.UNOPENED:
            raise ClientStateError(f"the document job store is {self._state.value}")
        if _is_postgres(self.database):
            backend: _Backend = await _PostgresBackend.connect(self.database)
        else:
            backend = await asyncio.to_thread(_SqliteBackend, self.database)
        for statement in _SCHEMA:
            await backend.execute(statement)
        self._backend = backend
        self._state = ClientState.OPENED

    async def aclose(self) -> None:
        """Cancel the jobs still converting (they end as failed), then disconnect."""
        if self._state is not ClientState.OPENED:
            self._state = ClientState.CLOSED
            return
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._state = ClientState.CLOSED
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.aclose()

    async def __aenter__(self) -> DocumentJobs:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- jobs ---------------------------------------------------------------------------

    async def create(self, filename: str) -> DocumentJob:
        """A new pending job; expired jobs are deleted first."""
        await self.purge_expired()
        now = self._clock.wall()
        job = DocumentJob(uuid.uuid4().hex, JobStatus.PENDING, filename, now, now)
        await self._db().execute(
            f"INSERT INTO document_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL)",
            job.id,
            job.status.value,
            job.filename,
            job.created_at,
            job.updated_at,
        )
        return job

    async def mark_running(self, job_id: str) -> None:
        await self._update(job_id, JobStatus.RUNNING)

    async def finish(self, job_id: str, result: Mapping[str, Any]) -> None:
        await self._update(job_id, JobStatus.SUCCEEDED, result=json.dumps(result))

    async def fail(self, job_id: str, error: BaseException) -> None:
        """Record the error; one that is not a ServiceError is stored as a bare 500."""
        await self._update(job_id, JobStatus.FAILED, error=json.dumps(_error_record(error)))

    async def get(self, job_id: str) -> DocumentJob:
        """The job; raises ResourceNotFoundError when it is unknown or expired."""
        row = await self._db().fetchone(
            f"SELECT {_COLUMNS} FROM document_jobs WHERE id = ? AND created_at > ?",
            job_id,
            self._clock.wall() - self.ttl,
        )
        if row is None:
            raise ResourceNotFoundError(
                f"document job {job_id!r} not found (unknown, or older than {self.ttl:g} s)",
                resource_type="document job",
                resource_id=job_id,
            )
        return DocumentJob._from_row(tuple(row))

    async def purge_expired(self) -> int:
        """Delete jobs older than the TTL; how many went."""
        return await self._db().execute(
            "DELETE FROM document_jobs WHERE created_at <= ?", self._clock.wall() - self.ttl
        )

    async def submit(self, filename: str, work: Work) -> DocumentJob:
        """A new job whose ``work`` runs in the background; its outcome is stored."""
        job = await self.create(filename)
        task = asyncio.create_task(self._run(job.id, work), name=f"document-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job_id: str, work: Work) -> None:
        try:
            try:
                await self.mark_running(job_id)
                result = await work()
            except asyncio.CancelledError:
                await self.fail(
                    job_id, ServiceUnavailableError("the gateway stopped before the job finished")
                )
                raise
            except Exception as exc:
                await self.fail(job_id, exc)
            else:
                await self.finish(job_id, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            # nobody awaits this task, so this log line is the only trace left
            _log.exception("document job %s: could not store its outcome", job_id)

    async def _update(self, job_id: str, status: JobStatus, **values: str) -> None:
        # a job that expired meanwhile is simply gone: its outcome has nowhere to go
        assignments = "".join(f", {column} = ?" for column in values)
        await self._db().execute(
            f"UPDATE document_jobs SET status = ?, updated_at = ?{assignments} WHERE id = ?",
            status.value,
            self._clock.wall(),
            *values.values(),
            job_id,
        )

    def _db(self) -> _Backend:
        if self._backend is None:
            raise ClientStateError(f"the document job store is {self._state.value}")
        return self._backend


def database_for(url: str) -> str:
    """Where the jobs go for a ``DATABASE_URL``: a PostgreSQL URL, or a SQLite file path.

    A SQLite URL gives ``document_jobs.db`` in its file's folder (``:memory:`` stays so).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"DATABASE_URL {url!r} is not a URL")
    dialect = scheme.split("+", 1)[0].lower()
    if dialect in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    if dialect != "sqlite":
        raise ValueError(
            f"DATABASE_URL: the gateway keeps document jobs in SQLite or PostgreSQL, not {dialect}"
        )
    path = rest.split("?", 1)[0].removeprefix("/")
    if path in ("", ":memory:"):
        return ":memory:"
    return str(Path(path).parent / _SQLITE_FILE)


def _is_postgres(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def _error_record(error: BaseException) -> dict[str, Any]:
    if isinstance(error, ServiceError):
        return {
            "message": error.message,
            "type": type(error).__name__,
            "http_status": error.http_status,
        }
    # foreign errors may carry internals a caller should not see; the log has them
    _log.error("document job failed unexpectedly", exc_info=error)
    return {"message": "internal error", "type": "InternalError", "http_status": 500}


class _SqliteBackend:
    """One connection, used from worker threads one statement at a time."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")

    def _execute(self, sql: str, args: tuple[object, ...]) -> int:
        with self._lock:
            return int(self._db.execute(sql, args).rowcount)

    def _fetchone(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _close(self) -> None:
        with self._lock:
            self._db.close()

    async def execute(self, sql: str, *args: object) -> int:
        return await asyncio.to_thread(self._execute, sql, args)

    async def fetchone(self, sql: str, *args: object) -> tuple[Any, ...] | None:
        return await asyncio.to_thread(self._fetchone, sql, args)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)


class _PostgresBackend:
    """An asyncpg pool; ``?`` placeholders become ``$1, $2, ...``."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> _PostgresBackend:
        try:
            import asyncpg  # type: ignore[import-untyped]
        except ImportError as exc:
            raise RuntimeError(
                "DATABASE_URL names PostgreSQL, but asyncpg is not installed: "
                "pip install 'servicegrid[integration]' (or asyncpg itself)"
            ) from exc
        return cls(await asyncpg.create_pool(url, min_size=1, max_size=4))

    async def execute(self, sql: str, *args: object) -> int:
        status = await self._pool.execute(_numbered(sql), *args)
        count = str(status).rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def fetchone(self, sql: str, *args: object) -> tuple[Any, ...] | None:
        row = await self._pool.fetchrow(_numbered(sql), *args)
        return None if row is None else tuple(row)

    async def aclose(self) -> None:
        await self._pool.close()


def _numbered(sql: str) -> str:
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)
