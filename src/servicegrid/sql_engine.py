"""Async SQLAlchemy engines for the services that keep rows: SQLite by default, PostgreSQL at scale.

.. code-block:: python

    url = async_database_url("postgresql://app@db/questions")   # postgresql+asyncpg://...
    prepare_sqlite_folder(url)                                   # .servicegrid/ for a SQLite file
    engine = create_engine(url)

Needs SQLAlchemy and a driver (aiosqlite, asyncpg): the ``integration`` or ``apps`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["async_database_url", "create_engine", "prepare_sqlite_folder"]

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_database_url(database_url: str) -> str:
    """``database_url`` with an async driver: ``sqlite`` → aiosqlite, ``postgresql`` → asyncpg.

    URLs are often written for a blocking driver (``postgresql://...``); a URL that
    already names an async driver is returned unchanged. Raises ValueError for a
    URL SQLAlchemy cannot parse.
    """
    try:
        url = make_url(database_url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ValueError(f"not a database URL: {database_url!r} ({exc})") from exc
    if url.drivername in _ASYNC_DRIVERS:
        url = url.set(drivername=_ASYNC_DRIVERS[url.drivername])
    return url.render_as_string(hide_password=False)


def prepare_sqlite_folder(database_url: str) -> None:
    """Create the folder of a SQLite file URL (``sqlite:///.servicegrid/x.db``); else nothing."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``database_url`` (an async driver URL, e.g. ``sqlite+aiosqlite``).

    SQLite files run in WAL mode with ``synchronous=NORMAL`` (a commit survives the process
    being killed) through one connection: SQLite takes one writer at a time anyway, and
    writers queueing on one connection never meet SQLite's busy-wait sleeps.
    """
    if make_url(database_url).get_backend_name() == "sqlite":
        kwargs = {"pool_size": 1, "max_overflow": 0, "pool_reset_on_return": None, **kwargs}
    engine = create_async_engine(database_url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
