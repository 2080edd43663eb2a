"""The questions' storage: the rows, their tags and the change feed, in SQLite or PostgreSQL.

Tables, created at :meth:`QuestionStore.open`:

- ``questions``: one row per question; ``pk`` is creation order, ``search_text`` the
  lower-cased text the keyword search filters on before scoring.
- ``question_tags``: ``(question_id, tag)``, for the tag filter.
- ``question_changes``: the feed: ``seq`` (autoincrement, never reused), ``kind``,
  ``question_id``, the question as JSON text, ``at``.

Every create, update and delete writes its change row in the same transaction as the
question. On PostgreSQL each writing transaction first takes a transaction-scoped
advisory lock, so writes commit one at a time in the order of their seqs: a reader of
the feed never sees seq 12 while seq 11 is still to commit, and so never skips one.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Index,
    Integer,
    MetaData,
    Row,
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from servicegrid.apps._http import DEFAULT_PER_PAGE
from servicegrid.apps._store import SqlStore, advisory_lock
from servicegrid.apps.questions.samples import SAMPLE_QUESTIONS
from servicegrid.apps.questions.schemas import (
    DEFAULT_CHANGES_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    ChangeKind,
    Question,
    QuestionChange,
    QuestionCreate,
    QuestionHit,
    QuestionUpdate,
)
from servicegrid.apps.questions.search import (
    LIKE_ESCAPE,
    Document,
    like_pattern,
    query_terms,
    rank,
    search_text,
)
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ConflictError, ResourceNotFoundError, ValidationError
from servicegrid.settings import Settings

__all__ = ["QuestionStore"]

# pg_advisory_xact_lock key of the questions' writers ("SGQUEST" in ASCII)
_WRITE_LOCK: Final = 0x53_47_51_55_45_53_54

_metadata = MetaData()
# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

_questions = Table(
    "questions",
    _metadata,
    Column("pk", _SERIAL, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("tags", Text, nullable=False),  # a JSON list, in the order given
    Column("search_text", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)
_question_tags = Table(
    "question_tags",
    _metadata,
    Column("question_id", String(128), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Index("ix_question_tags_tag", "tag"),
)
_question_changes = Table(
    "question_changes",
    _metadata,
    Column("seq", _SERIAL, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("question_id", String(128), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("at", String(32), nullable=False),
    sqlite_autoincrement=True,  # a seq is never reused, even after the newest row is gone
)


class QuestionStore(SqlStore):
    """Questions and their change feed in one database (any SQLAlchemy async URL).

    ``open()`` creates the tables (and, with ``sample_data``, seeds an empty store);
    ``aclose()`` releases the connections. Also an async context manager.
    """

    what = "question store"
    metadata = _metadata
    start_lock = _WRITE_LOCK

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> QuestionStore:
        """The store of ``QUESTION_SERVICE_DATABASE_URL``, seeded if ``SERVICEGRID_SAMPLE_DATA``."""
        return cls(
            settings.question_service_database_url, clock=clock, sample_data=settings.sample_data
        )

    # ---- writes --------------------------------------------------------------------

    async def create(self, data: QuestionCreate) -> Question:
        """Store a new question; ConflictError when its id is taken."""
        question = _new_question(data, self._now())
        try:
            async with self._writing() as conn:
                taken = await conn.scalar(
                    select(_questions.c.pk).where(_questions.c.id == question.id)
                )
                if taken is not None:
                    raise _taken(question.id)
                await _insert(conn, question)
        except IntegrityError as exc:  # another process (SQLite) took the id meanwhile
            raise _taken(question.id) from exc
        return question

    async def update(self, question_id: str, changes: QuestionUpdate) -> Question:
        """Apply the fields ``changes`` carries; ResourceNotFoundError for an unknown id.

        A change with no fields changes nothing and records nothing.
        """
        fields = changes.model_dump(exclude_unset=True)
        async with self._writing() as conn:
            current = await _load(conn, question_id)
            if not fields:
                return current
            question = current.model_copy(update={**fields, "updated_at": self._now()})
            await conn.execute(
                update(_questions)
                .where(_questions.c.id == question_id)
                .values(
                    title=question.title,
                    body=question.body,
                    tags=json.dumps(question.tags),
                    search_text=_search_text(question),
                    updated_at=question.updated_at,
                )
            )
            if "tags" in fields:
                await conn.execute(
                    delete(_question_tags).where(_question_tags.c.question_id == question_id)
                )
                await _insert_tags(conn, question)
            await _record(conn, "updated", question, question.updated_at)
        return question

    async def delete(self, question_id: str) -> Question:
        """Remove a question; what it was. ResourceNotFoundError for an unknown id."""
        async with self._writing() as conn:
            question = await _load(conn, question_id)
            await conn.execute(
                delete(_question_tags).where(_question_tags.c.question_id == question_id)
            )
            await conn.execute(delete(_questions).where(_questions.c.id == question_id))
            await _record(conn, "deleted", question, self._now())
        return question

    # ---- reads ---------------------------------------------------------------------

    async def get(self, question_id: str) -> Question:
        """One question; ResourceNotFoundError for an unknown id."""
        async with self._require().connect() as conn:
            return await _load(conn, question_id)

    async def list(
        self,
        *,
        user_id: str | None = None,
        tag: str | None = None,
        page: int = 1,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> tuple[builtins.list[Question], int]:
        """One page of questions in creation order, and how many match in all.

        ``user_id`` and ``tag`` filter by exact match (``tag`` already lower-cased).
        """
        where = _filters(user_id=user_id, tag=tag)
        async with self._require().connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(_questions).where(*where))
            rows = await conn.execute(
                select(_questions)
                .where(*where)
                .order_by(_questions.c.pk)
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
            return [_question(row) for row in rows], int(total or 0)

    async def changes(
        self, *, after: int = 0, limit: int = DEFAULT_CHANGES_LIMIT
    ) -> tuple[builtins.list[QuestionChange], int, bool]:
        """The changes with seq above ``after``, oldest first: ``(changes, next_after, has_more)``.

        ``next_after`` is the last seq returned (``after`` when none was).
        """
        async with self._require().connect() as conn:
            rows = (
                await conn.execute(
                    select(_question_changes)
                    .where(_question_changes.c.seq > after)
                    .order_by(_question_changes.c.seq)
                    .limit(limit + 1)
                )
            ).all()
        has_more = len(rows) > limit
        changes = [
            QuestionChange(
                seq=row.seq,
                kind=row.kind,
                question=Question.model_validate_json(row.question),
                at=row.at,
            )
            for row in rows[:limit]
        ]
        return changes, changes[-1].seq if changes else after, has_more

    async def search(
        self, q: str, *, user_id: str | None = None, limit: int = DEFAULT_SEARCH_LIMIT
    ) -> tuple[builtins.list[QuestionHit], int]:
        """The best ``limit`` matches of keyword query ``q``, and how many match in all.

        See :mod:`servicegrid.apps.questions.search` for the scores. Raises
        ValidationError when ``q`` has no words.
        """
        terms = query_terms(q)
        if not terms:
            raise ValidationError.for_field("q", "must contain at least one word")
        where = _filters(user_id=user_id, tag=None)
        matching = or_(
            *(
                _questions.c.search_text.like(like_pattern(term), escape=LIKE_ESCAPE)
                for term in terms
            )
        )
        async with self._require().connect() as conn:
            searched = await conn.scalar(select(func.count()).select_from(_questions).where(*where))
            rows = (
                await conn.execute(
                    select(_questions).where(*where, matching).order_by(_questions.c.pk)
                )
            ).all()
        documents = [Document(row.title, row.body, tuple(json.loads(row.tags))) for row in rows]
        hits = rank(documents, terms, total_documents=int(searched or 0))
        items = [QuestionHit(question=_question(rows[i]), score=score) for i, score in hits[:limit]]
        return items, len(hits)

    # ---- helpers -------------------------------------------------------------------

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        async with self._require().begin() as conn:
            await _lock(conn)
            yield conn

    async def _is_empty(self, conn: AsyncConnection) -> bool:
        return not await conn.scalar(select(func.count()).select_from(_questions))

    async def _seed(self, conn: AsyncConnection) -> None:
        now = self._now()
        for sample in SAMPLE_QUESTIONS:
            await _insert(conn, _new_question(sample, now))


async def _lock(conn: AsyncConnection) -> None:
    # PostgreSQL: one writer at a time, so seqs commit in order; SQLite has one writer anyway
    await advisory_lock(conn, _WRITE_LOCK)


def _new_question(data: QuestionCreate, now: str) -> Question:
    return Question(
        id=data.id or f"q-{uuid.uuid4().hex[:12]}",
        user_id=data.user_id,
        title=data.title,
        body=data.body,
        tags=list(data.tags),
        created_at=now,
        updated_at=now,
    )


def _taken(question_id: str) -> ConflictError:
    return ConflictError(f"id: question {question_id!r} already exists")


def _search_text(question: Question) -> str:
    return search_text(question.title, question.body, question.tags)


async def _insert(conn: AsyncConnection, question: Question) -> None:
    """The question's row, its tags and its ``created`` change."""
    await conn.execute(
        insert(_questions).values(
            id=question.id,
            user_id=question.user_id,
            title=question.title,
            body=question.body,
            tags=json.dumps(question.tags),
            search_text=_search_text(question),
            created_at=question.created_at,
            updated_at=question.updated_at,
        )
    )
    await _insert_tags(conn, question)
    await _record(conn, "created", question, question.created_at)


async def _insert_tags(conn: AsyncConnection, question: Question) -> None:
    if question.tags:
        await conn.execute(
            insert(_question_tags),
            [{"question_id": question.id, "tag": tag} for tag in question.tags],
        )


async def _record(conn: AsyncConnection, kind: ChangeKind, question: Question, at: str) -> None:
    await conn.execute(
        insert(_question_changes).values(
            kind=kind, question_id=question.id, question=question.model_dump_json(), at=at
        )
    )


async def _load(conn: AsyncConnection, question_id: str) -> Question:
    row = (await conn.execute(select(_questions).where(_questions.c.id == question_id))).first()
    if row is None:
        raise ResourceNotFoundError(
            f"question {question_id!r} not found", resource_type="question", resource_id=question_id
        )
    return _question(row)


def _question(row: Row[Any]) -> Question:
    return Question(
        id=row.id,
        user_id=row.user_id,
        title=row.title,
        body=row.body,
        tags=json.loads(row.tags),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _filters(*, user_id: str | None, tag: str | None) -> Sequence[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if user_id is not None:
        where.append(_questions.c.user_id == user_id)
    if tag is not None:
        tagged = select(_question_tags.c.question_id).where(_question_tags.c.tag == tag)
        where.append(_questions.c.id.in_(tagged))
    return where
