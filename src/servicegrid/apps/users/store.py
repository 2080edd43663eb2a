"""The users table on async SQLAlchemy Core: SQLite by default, PostgreSQL at scale.

.. code-block:: python

    async with UserStore.from_settings(settings) as store:
        user = await store.create(UserCreate(username="dana", email="dana@example.com"))

Ids, usernames and emails are unique (ConflictError naming the field); an unknown id
raises ResourceNotFoundError. Listings are in creation order (a sequence column).
"""

from __future__ import annotations

import builtins
import json
import uuid
from typing import Any, Final

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from servicegrid.apps._http import DEFAULT_PER_PAGE, MAX_PER_PAGE
from servicegrid.apps._store import SqlStore
from servicegrid.apps.users.schemas import User, UserCreate, UserUpdate
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import (
    ConflictError,
    ResourceNotFoundError,
    ValidationError,
)
from servicegrid.settings import Settings

__all__ = ["SAMPLE_USERS", "UserStore", "users_table"]

users_metadata = MetaData(
    naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users_table = Table(
    "users",
    users_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("full_name", String(200), nullable=False),
    Column("interests", Text, nullable=False),  # a JSON array of strings
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

SAMPLE_USERS: Final = (
    UserCreate(
        id="user-123",
        username="alice",
        email="alice@example.com",
        full_name="Alice Example",
        interests=["machine learning", "python"],
    ),
    UserCreate(
        id="user-456",
        username="bob",
        email="bob@example.com",
        full_name="Bob Example",
        interests=["databases"],
    ),
    UserCreate(
        id="user-789",
        username="carol",
        email="carol@example.com",
        full_name="Carol Example",
        interests=["distributed systems"],
    ),
)

_UNIQUE: Final = ("id", "username", "email")
_START_LOCK: Final = 0x5347555345525321  # pg_advisory_xact_lock key ("SGUSERS!" in ASCII)
_MAX_PAGE: Final = 2**31 - 1


class UserStore(SqlStore):
    """Users in the database at ``database_url`` (a blocking-driver URL is made async).

    ``sample_data`` seeds :data:`SAMPLE_USERS` at :meth:`open` when the table is empty.
    """

    what = "user store"
    metadata = users_metadata
    start_lock = _START_LOCK

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> UserStore:
        """The store ``USER_SERVICE_DATABASE_URL`` and ``SERVICEGRID_SAMPLE_DATA`` describe."""
        return cls(
            settings.user_service_database_url, clock=clock, sample_data=settings.sample_data
        )

    # ---- operations ---------------------------------------------------------------------

    async def create(self, data: UserCreate) -> User:
        """Store a new user; its id is ``data.id``, or ``user-<12 hex>`` when that is empty."""
        now = self._now()
        row = {
            "id": data.id or f"user-{uuid.uuid4().hex[:12]}",
            "username": data.username,
            "email": data.email,
            "full_name": data.full_name,
            "interests": json.dumps(data.interests),
            "created_at": now,
            "updated_at": now,
        }
        engine = self._require()
        try:
            async with engine.begin() as conn:
                await _refuse_taken(conn, {key: row[key] for key in _UNIQUE})
                await conn.execute(insert(users_table).values(row))
        except IntegrityError as exc:  # a concurrent writer took a value between check and insert
            raise await _conflict_after(engine, {key: row[key] for key in _UNIQUE}) from exc
        return _user(row)

    async def get(self, user_id: str) -> User:
        """The user ``user_id``; ResourceNotFoundError when there is none."""
        async with self._require().connect() as conn:
            return _user(await _row(conn, user_id))

    async def update(self, user_id: str, data: UserUpdate) -> User:
        """Change the fields ``data`` sets; the others stay as they are."""
        changes = data.changes()
        if "interests" in changes:
            changes["interests"] = json.dumps(changes["interests"])
        engine = self._require()
        try:
            async with engine.begin() as conn:
                current = dict(await _row(conn, user_id, for_update=True))
                changes = {k: v for k, v in changes.items() if current[k] != v}
                if not changes:
                    return _user(current)
                await _refuse_taken(conn, _unique_values(changes), other_than=user_id)
                changes["updated_at"] = self._now()
                await conn.execute(
                    update(users_table).where(users_table.c.id == user_id).values(changes)
                )
        except IntegrityError as exc:
            raise await _conflict_after(engine, _unique_values(changes), user_id) from exc
        return _user({**current, **changes})

    async def delete(self, user_id: str) -> None:
        """Remove the user ``user_id``; ResourceNotFoundError when there is none."""
        async with self._require().begin() as conn:
            result = await conn.execute(delete(users_table).where(users_table.c.id == user_id))
        if result.rowcount == 0:
            raise _not_found(user_id)

    async def list(
        self, page: int = 1, per_page: int = DEFAULT_PER_PAGE
    ) -> tuple[builtins.list[User], int]:
        """One page of users in creation order, and how many there are in all."""
        if not 1 <= page <= _MAX_PAGE:
            raise ValidationError.for_field("page", f"must be between 1 and {_MAX_PAGE}")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValidationError.for_field("per_page", f"must be between 1 and {MAX_PER_PAGE}")
        query = (
            select(users_table)
            .order_by(users_table.c.seq, users_table.c.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        async with self._require().connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(users_table))).scalar()
            rows = (await conn.execute(query)).mappings().all()
        return [_user(row) for row in rows], int(total or 0)

    # ---- helpers ------------------------------------------------------------------------

    async def _is_empty(self, conn: AsyncConnection) -> bool:
        return not await conn.scalar(select(func.count()).select_from(users_table))

    async def _seed(self, conn: AsyncConnection) -> None:
        now = self._now()
        for sample in SAMPLE_USERS:  # one by one: the sequence follows the order above
            row = {**sample.model_dump(), "interests": json.dumps(sample.interests)}
            row |= {"created_at": now, "updated_at": now}
            await conn.execute(insert(users_table).values(row))


def _user(row: RowMapping | dict[str, Any]) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        email=row["email"],
        full_name=row["full_name"],
        interests=json.loads(row["interests"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _not_found(user_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(
        f"user {user_id!r} not found", resource_type="user", resource_id=user_id
    )


def _unique_values(changes: dict[str, Any]) -> dict[str, str]:
    return {key: changes[key] for key in _UNIQUE if key in changes}


async def _row(conn: AsyncConnection, user_id: str, *, for_update: bool = False) -> RowMapping:
    query = select(users_table).where(users_table.c.id == user_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise _not_found(user_id)
    return row


async def _taken(
    conn: AsyncConnection, values: dict[str, str], other_than: str | None = None
) -> ConflictError | None:
    """The conflict the first of ``values`` already held by another user makes, if any."""
    if not values:
        return None
    query = select(*(users_table.c[key] for key in _UNIQUE)).where(
        or_(*(users_table.c[key] == value for key, value in values.items()))
    )
    if other_than is not None:
        query = query.where(users_table.c.id != other_than)
    rows = (await conn.execute(query)).mappings().all()
    for key in _UNIQUE:
        if key in values and any(row[key] == values[key] for row in rows):
            return ConflictError(
                f"{key}: {values[key]!r} is already taken by another user",
                details={"field": key},
            )
    return None


async def _refuse_taken(
    conn: AsyncConnection, values: dict[str, str], other_than: str | None = None
) -> None:
    conflict = await _taken(conn, values, other_than)
    if conflict is not None:
        raise conflict


async def _conflict_after(
    engine: AsyncEngine, values: dict[str, str], other_than: str | None = None
) -> ConflictError:
    """The conflict to report once the database refused a write for a unique value."""
    async with engine.connect() as conn:
        conflict = await _taken(conn, values, other_than)
    return conflict or ConflictError("a user with this id, username or email already exists")
