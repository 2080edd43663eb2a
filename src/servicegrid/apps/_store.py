"""``SqlStore``: the lifecycle every application store shares, on async SQLAlchemy Core.

.. code-block:: python

    class UserStore(SqlStore):
        what = "user store"
        metadata = users_metadata
        start_lock = 0x5347555345525321

        async def _is_empty(self, conn): ...
        async def _seed(self, conn): ...

    async with UserStore(url, sample_data=True) as store:   # tables created, samples seeded
        ...

:meth:`SqlStore.open` creates the missing tables and, with ``sample_data``, seeds an
empty store, each under a PostgreSQL advisory lock so that replicas starting together
do it once. A SQLite file's folder is created first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from servicegrid.clock import SYSTEM_CLOCK, Clock, iso_utc
from servicegrid.errors import ClientStateError
from servicegrid.sql_engine import async_database_url, create_engine, prepare_sqlite_folder

__all__ = ["SqlStore", "advisory_lock"]


async def advisory_lock(conn: AsyncConnection, key: int) -> None:
    """On PostgreSQL, hold lock ``key`` until the transaction ends (SQLite: one writer anyway)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(key)))


class SqlStore(ABC):
    """Rows in the database at ``database_url`` (a blocking-driver URL is made async).

    Subclasses name their tables (``metadata``), the lock taken at start
    (``start_lock``) and how an empty store is told and seeded.
    """

    what: ClassVar[str]
    metadata: ClassVar[MetaData]
    start_lock: ClassVar[int]

    def __init__(
        self, database_url: str, *, clock: Clock = SYSTEM_CLOCK, sample_data: bool = False
    ) -> None:
        self.database_url = async_database_url(database_url)
        self.sample_data = sample_data
        self._clock = clock
        self._engine: AsyncEngine | None = None

    async def open(self) -> None:
        """Connect, create the missing tables, seed an empty store when asked; once only."""
        if self._engine is not None:
            return
        prepare_sqlite_folder(self.database_url)
        engine = create_engine(self.database_url)
        try:
            async with engine.begin() as conn:
                await advisory_lock(conn, self.start_lock)
                await conn.run_sync(self.metadata.create_all)
            if self.sample_data:
                async with engine.begin() as conn:
                    await advisory_lock(conn, self.start_lock)
                    if await self._is_empty(conn):
                        await self._seed(conn)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    async def aclose(self) -> None:
        """Close every connection; a closed store can be opened again."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._require().dialect.name

    async def ping(self) -> None:
        """Run a trivial query; raises when the database cannot answer."""
        async with self._require().connect() as conn:
            await conn.execute(select(1))

    def _require(self) -> AsyncEngine:
        if self._engine is None:
            raise ClientStateError(f"the {self.what} is not open; call open() first")
        return self._engine

    def _now(self) -> str:
        return iso_utc(self._clock.wall()) or ""

    @abstractmethod
    async def _is_empty(self, conn: AsyncConnection) -> bool:
        """Whether the store holds nothing yet (so sample data may go in)."""

    @abstractmethod
    async def _seed(self, conn: AsyncConnection) -> None:
        """Write the sample data, inside the open transaction ``conn``."""
