"""The users service's REST app: ``/users`` CRUD, pages and ``/health``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, status

from servicegrid.apps._http import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    ErrorBody,
    Page,
    add_health_route,
    install_error_handlers,
)
from servicegrid.apps.users.schemas import (
    ID_PATTERN,
    Deleted,
    User,
    UserCreate,
    UserUpdate,
)
from servicegrid.apps.users.store import UserStore
from servicegrid.settings import Settings

__all__ = ["create_app", "users_router"]

UserId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=ID_PATTERN, description="The user's id")
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No user has this id"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The id, username or email is taken"}
}


def create_app(settings: Settings, *, store: UserStore | None = None) -> FastAPI:
    """The app over ``store``; without one it opens and closes its own from ``settings``."""
    users = store if store is not None else UserStore.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if store is not None:
            yield
            return
        await users.open()
        try:
            yield
        finally:
            await users.aclose()

    app = FastAPI(
        title="servicegrid users",
        description="Users: create, read, update, delete and list them (seed 002).",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    async def check() -> dict[str, Any]:
        await users.ping()
        return {"database": users.backend}

    add_health_route(app, "users", check)
    app.include_router(users_router(users))
    return app


def users_router(users: UserStore) -> APIRouter:
    """The ``/users`` routes over ``users``."""
    router = APIRouter(prefix="/users", tags=["users"])

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary="Create a user",
        responses=_CONFLICT,
    )
    async def create_user(body: UserCreate) -> User:
        return await users.create(body)

    @router.get("", summary="List users in creation order")
    async def list_users(
        page: Annotated[int, Query(ge=1, le=2**31 - 1, description="1 is the first")] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = DEFAULT_PER_PAGE,
    ) -> Page[User]:
        items, total = await users.list(page, per_page)
        return Page[User](items=items, total=total, page=page, per_page=per_page)

    @router.get("/{user_id}", summary="Read a user", responses=_NOT_FOUND)
    async def get_user(user_id: UserId) -> User:
        return await users.get(user_id)

    @router.patch(
        "/{user_id}",
        summary="Change the fields given; the others stay",
        responses={**_NOT_FOUND, **_CONFLICT},
    )
    async def update_user(user_id: UserId, body: UserUpdate) -> User:
        return await users.update(user_id, body)

    @router.delete("/{user_id}", summary="Delete a user", responses=_NOT_FOUND)
    async def delete_user(user_id: UserId) -> Deleted:
        await users.delete(user_id)
        return Deleted(id=user_id)

    return router
