"""Rows the stores share: ids, UTC moments, page counts, and rows with a unique name.

:class:`~servicegrid.integration.registry.ServiceRegistry` and
:class:`~servicegrid.integration.workflows.WorkflowStore` keep :class:`NamedRows`: a ``key``
is matched against ids first, then against names; a missing one is a
:class:`ResourceNotFoundError`. A name taken twice is a :class:`ConflictError`, whether it is
seen before writing or the database's unique index refuses the commit. Both kinds of row also
have a description, a status and metadata, which a partial update changes the same way.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypedDict, TypeVar

from sqlalchemy import Select, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicegrid.errors import ConflictError, ResourceNotFoundError

__all__ = [
    "NamedRow",
    "NamedRows",
    "NamedUpdate",
    "Page",
    "as_utc",
    "new_id",
    "page_count",
    "utcnow",
]


class PageNumbers(TypedDict):
    """Where a page stands among all the rows of its query."""

    total: int
    page: int
    per_page: int
    pages: int


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite hands stored moments back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def page_count(total: int, per_page: int) -> int:
    return math.ceil(total / per_page)


async def read_page(
    session: AsyncSession,
    query: Select[Any],
    order: Sequence[Any],
    page: int,
    per_page: int,
) -> tuple[list[Any], PageNumbers]:
    """Page ``page`` of ``query``'s rows in ``order``, and the page's numbers (``total``,
    ``page``, ``per_page``, ``pages``) as the API's page models take them."""
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    found = await session.scalars(
        query.order_by(*order).offset((page - 1) * per_page).limit(per_page)
    )
    numbers = PageNumbers(
        total=total, page=page, per_page=per_page, pages=page_count(total, per_page)
    )
    return list(found), numbers


class NamedRow(Protocol):
    """A mapped row with these columns: ``name`` is unique, ``status`` filters pages."""

    id: str
    name: str
    description: str
    status: str
    metadata_: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class NamedUpdate(Protocol):
    """The fields of a partial update (a :class:`PartialUpdate`) that every such row has."""

    @property
    def name(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def status(self) -> enum.Enum | None: ...
    @property
    def metadata(self) -> dict[str, Any] | None: ...
    @property
    def model_fields_set(self) -> set[str]: ...


RowT = TypeVar("RowT", bound=NamedRow)
ModelT = TypeVar("ModelT")


class Page(PageNumbers, Generic[ModelT]):
    """The fields of a page model (``ServicePage``, ``WorkflowPage``)."""

    items: list[ModelT]


def _nothing() -> None:
    pass


class NamedRows(Generic[RowT, ModelT]):
    """The rows of one table, read and written through ``sessions``, answered as ``to_model``.

    ``resource_type`` names a row in errors ("service", "workflow"); ``clock`` gives the
    ``updated_at`` of an update. ``on_change`` is called after every commit that writes (a
    failed one included) and after every removal.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        row_type: type[RowT],
        to_model: Callable[[RowT], ModelT],
        *,
        resource_type: str,
        clock: Callable[[], datetime],
        on_change: Callable[[], None] = _nothing,
    ) -> None:
        self._sessions = sessions
        self._row_type = row_type
        self._columns = inspect(row_type).columns
        self._to_model = to_model
        self.resource_type = resource_type
        self._clock = clock
        self._on_change = on_change

    def conflict(self, name: str) -> ConflictError:
        return ConflictError(
            f"{self.resource_type} {name!r} already exists",
            details={"resource_type": self.resource_type, "name": name},
        )

    async def get(self, key: str) -> ModelT:
        """The row with this id, else this name; :class:`ResourceNotFoundError` if none."""
        async with self._sessions() as session:
            return self._to_model(await self.find(session, key))

    async def page(self, *, status: enum.Enum | None, page: int, per_page: int) -> Page[ModelT]:
        """One page of rows, oldest first (then by name), only those with ``status`` if given."""
        if page < 1 or per_page < 1:
            raise ValueError("page and per_page must be at least 1")
        columns = self._columns
        query = select(self._row_type)
        if status is not None:
            query = query.where(columns["status"] == status.value)
        order = (columns["created_at"], columns["name"])
        async with self._sessions() as session:
            found, numbers = await read_page(session, query, order, page, per_page)
            return Page(items=[self._to_model(row) for row in found], **numbers)

    async def add(self, row: RowT) -> ModelT:
        """Insert ``row``; :class:`ConflictError` when its name is taken."""
        async with self._sessions() as session:
            await self._claim(session, row.name)
            session.add(row)
            await self._commit(session, row.name)
        return self._to_model(row)

    async def add_unless_same(
        self, row: RowT, same: Callable[[ModelT], bool]
    ) -> tuple[ModelT, bool]:
        """Insert ``row`` and return it as new; when its name is taken by a row for which
        ``same`` holds, return that one as not new (so a registration can be repeated).
        A different row under the name is a :class:`ConflictError`."""
        try:
            return await self.add(row), True
        except ConflictError:
            existing = await self.get(row.name)
            if not same(existing):
                raise
            return existing, False

    async def update(
        self, key: str, changes: NamedUpdate, change: Callable[[RowT], None]
    ) -> ModelT:
        """Apply ``changes`` to the row found by ``key``, then ``change`` for the other columns.

        A rename onto a taken name is a :class:`ConflictError`; ``updated_at`` moves when
        ``changes`` sets any field.
        """
        async with self._sessions() as session:
            row = await self.find(session, key)
            if changes.name is not None and changes.name != row.name:
                await self._claim(session, changes.name)
                row.name = changes.name
            if changes.description is not None:
                row.description = changes.description
            if changes.status is not None:
                row.status = changes.status.value
            if changes.metadata is not None:
                row.metadata_ = dict(changes.metadata)
            change(row)
            if changes.model_fields_set:
                row.updated_at = self._clock()
            await self._commit(session, row.name)
            return self._to_model(row)

    async def remove(self, key: str) -> ModelT:
        """Delete the row found by ``key`` and answer it as it was."""
        async with self._sessions() as session:
            row = await self.find(session, key)
            removed = self._to_model(row)
            await session.delete(row)
            await session.commit()
        self._on_change()
        return removed

    async def find(self, session: AsyncSession, key: str) -> RowT:
        """The row with this id, else this name, in ``session``; ResourceNotFoundError if none."""
        row = await session.get(self._row_type, key)
        if row is None:
            row = await session.scalar(select(self._row_type).where(self._columns["name"] == key))
        if row is None:
            raise ResourceNotFoundError(resource_type=self.resource_type, resource_id=key)
        return row

    async def _claim(self, session: AsyncSession, name: str) -> None:
        query = select(self._columns["id"]).where(self._columns["name"] == name)
        found = await session.scalar(query)
        if found is not None:
            raise self.conflict(name)

    async def _commit(self, session: AsyncSession, name: str) -> None:
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise self.conflict(name) from exc
        finally:
            self._on_change()
