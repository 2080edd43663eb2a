"""The service registry: register, read, list, update and deregister services in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicegrid.integration.db import ServiceRow
from servicegrid.integration.models import (
    HttpMethod,
    Service,
    ServiceAction,
    ServiceCreate,
    ServicePage,
    ServiceStatus,
    ServiceUpdate,
)
from servicegrid.integration.rows import NamedRows, as_utc, new_id, utcnow

__all__ = ["ServiceRegistry"]


def _stored_action(data: dict[str, Any]) -> ServiceAction:
    """An action as stored: checked when it was written, so it is not checked again.

    Checking a JSON Schema costs milliseconds, and a rule added later must not make a service
    stored before it unreadable.
    """
    return ServiceAction.model_construct(
        **{**data, "method": HttpMethod(data.get("method") or HttpMethod.POST.value)}
    )


def _to_model(row: ServiceRow) -> Service:
    return Service(
        id=row.id,
        name=row.name,
        description=row.description,
        endpoint=row.endpoint,
        status=ServiceStatus(row.status),
        metadata=row.metadata_,
        actions=[_stored_action(action) for action in row.actions],
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _actions_json(actions: list[ServiceAction]) -> list[dict[str, Any]]:
    return [action.model_dump(mode="json") for action in actions]


def _same(stored: Service, spec: ServiceCreate) -> bool:
    """Whether registering ``spec`` would store what ``stored`` already is."""
    return (
        stored.description == spec.description
        and stored.endpoint == spec.endpoint
        and stored.status is spec.status
        and stored.metadata == dict(spec.metadata)
        and _actions_json(stored.actions) == _actions_json(spec.actions)
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
        self._rows = NamedRows(
            sessions,
            ServiceRow,
            _to_model,
            resource_type="service",
            clock=clock,
            on_change=self._changed,
        )

    def _changed(self) -> None:
        self.version += 1

    async def register(self, spec: ServiceCreate) -> tuple[Service, bool]:
        """Store a new service; returns it, and whether it is new.

        Registering again a service identical to the one stored under its name returns that
        one (so a registration can be repeated); a different one under a taken name is a
        :class:`ConflictError`.
        """
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
        return await self._rows.add_unless_same(row, lambda stored: _same(stored, spec))

    async def get(self, service_id: str) -> Service:
        """The service with this id, else this name; :class:`ResourceNotFoundError` if none."""
        return await self._rows.get(service_id)

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
        return ServicePage(**await self._rows.page(status=status, page=page, per_page=per_page))

    async def update(self, service_id: str, changes: ServiceUpdate) -> Service:
        """Apply the fields set in ``changes``; a rename onto a taken name is a conflict."""

        def change(row: ServiceRow) -> None:
            if changes.endpoint is not None:
                row.endpoint = changes.endpoint
            if changes.actions is not None:
                row.actions = _actions_json(changes.actions)

        return await self._rows.update(service_id, changes, change)

    async def deregister(self, service_id: str) -> Service:
        """Remove the service and return it as it was."""
        return await self._rows.remove(service_id)
