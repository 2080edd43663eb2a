"""The service registry: register, read, list, update and deregister services in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicegrid.errors import ConflictError, ResourceNotFoundError
from servicegrid.integration.db import ServiceRow
from servicegrid.integration.models import (
    Service,
    ServiceAction,
    ServiceCreate,
    ServicePage,
    ServiceStatus,
    ServiceUpdate,
)
from servicegrid.integration.rows import as_utc, new_id, page_count, utcnow

__all__ = ["ServiceRegistry"]


def _to_model(row: ServiceRow) -> Service:
    return Service(
        id=row.id,
        name=row.name,
        description=row.description,
        endpoint=row.endpoint,
        status=ServiceStatus(row.status),
        metadata=row.metadata_,
        actions=[ServiceAction.model_validate(action) for action in row.actions],
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _actions_json(actions: list[ServiceAction]) -> list[dict[str, Any]]:
    return [action.model_dump(mode="json") for action in actions]


def _duplicate(name: str) -> ConflictError:
    return ConflictError(
        f"service {name!r} already exists",
        details={"resource_type": "service", "name": name},
    )


class ServiceRegistry:
    """Services persisted through ``sessions``; names are unique, ids are generated UUIDs.

    Every ``service_id`` argument is matched against ids first, then against names.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = new_id,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._new_id = new_id
        self.version = 0
        """Counts the changes made through this registry, so readers can cache what they read."""

    async def register(self, spec: ServiceCreate) -> Service:
        """Store a new service; :class:`ConflictError` when the name is taken."""
        now = self._clock()
        row = ServiceRow(
            id=self._new_id(),
            name=spec.name,
            description=spec.description,
            endpoint=spec.endpoint,
            status=spec.status.value,
            metadata_=dict(spec.metadata),
            actions=_actions_json(spec.actions),
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session:
            if await self._name_taken(session, spec.name):
                raise _duplicate(spec.name)
            session.add(row)
            await self._commit(session, spec.name)
        return _to_model(row)

    async def get(self, service_id: str) -> Service:
        """The service with this id, else this name; :class:`ResourceNotFoundError` if none."""
        async with self._sessions() as session:
            return _to_model(await self._row(session, service_id))

    async def by_names(self, names: Iterable[str]) -> dict[str, Service]:
        """The registered services among ``names``, by name (unknown names are left out)."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        async with self._sessions() as session:
            rows = await session.scalars(select(ServiceRow).where(ServiceRow.name.in_(wanted)))
            return {row.name: _to_model(row) for row in rows}

    async def list(
        self, *, status: ServiceStatus | None = None, page: int = 1, per_page: int = 20
    ) -> ServicePage:
        """One page of services, oldest first, optionally only those with ``status``."""
        if page < 1 or per_page < 1:
            raise ValueError("page and per_page must be at least 1")
        query = select(ServiceRow)
        if status is not None:
            query = query.where(ServiceRow.status == status.value)
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = await session.scalars(
                query.order_by(ServiceRow.created_at, ServiceRow.name)
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
            items = [_to_model(row) for row in rows]
        return ServicePage(
            items=items,
            total=total,
            page=page,
            per_page=per_page,
            pages=page_count(total, per_page),
        )

    async def update(self, service_id: str, changes: ServiceUpdate) -> Service:
        """Apply the fields set in ``changes``; a rename onto a taken name is a conflict."""
        async with self._sessions() as session:
            row = await self._row(session, service_id)
            fields = changes.model_fields_set
            if changes.name is not None and changes.name != row.name:
                if await self._name_taken(session, changes.name):
                    raise _duplicate(changes.name)
                row.name = changes.name
            if changes.description is not None:
                row.description = changes.description
            if changes.endpoint is not None:
                row.endpoint = changes.endpoint
            if changes.status is not None:
                row.status = changes.status.value
            if changes.metadata is not None:
                row.metadata_ = dict(changes.metadata)
            if changes.actions is not None:
                row.actions = _actions_json(changes.actions)
            if fields:
                row.updated_at = self._clock()
            await self._commit(session, row.name)
            return _to_model(row)

    async def deregister(self, service_id: str) -> Service:
        """Remove the service and return it as it was."""
        async with self._sessions() as session:
            row = await self._row(session, service_id)
            removed = _to_model(row)
            await session.delete(row)
            await session.commit()
        self.version += 1
        return removed

    async def _row(self, session: AsyncSession, key: str) -> ServiceRow:
        row = await session.get(ServiceRow, key)
        if row is None:
            row = await session.scalar(select(ServiceRow).where(ServiceRow.name == key))
        if row is None:
            raise ResourceNotFoundError(resource_type="service", resource_id=key)
        return row

    async def _name_taken(self, session: AsyncSession, name: str) -> bool:
        found = await session.scalar(select(ServiceRow.id).where(ServiceRow.name == name))
        return found is not None

    async def _commit(self, session: AsyncSession, name: str) -> None:
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise _duplicate(name) from exc
        finally:
            self.version += 1
