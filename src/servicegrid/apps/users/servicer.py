"""The UserService servicer: the REST operations over gRPC, on the same store and models.

Requests are checked by the REST bodies' models (INVALID_ARGUMENT naming the
field); unknown ids are NOT_FOUND, taken ids, usernames and emails ALREADY_EXISTS
(through the server's error interceptor). In ``UpdateUserRequest`` a field that is
set changes; ``interests`` set to an empty list clears them.
"""

from __future__ import annotations

from typing import Any

import grpc

from servicegrid.apps._http import DEFAULT_PER_PAGE
from servicegrid.apps._validation import validated
from servicegrid.apps.users.schemas import User, UserCreate, UserUpdate, check_id
from servicegrid.apps.users.store import UserStore
from servicegrid.proto import user_service_pb2, user_service_pb2_grpc

__all__ = ["UserServicer"]

_pb = user_service_pb2


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    """Answers from ``store``, which its owner opens and closes."""

    def __init__(self, store: UserStore) -> None:
        self.store = store

    async def CreateUser(
        self,
        request: _pb.CreateUserRequest,
        context: grpc.aio.ServicerContext[_pb.CreateUserRequest, _pb.User],
    ) -> _pb.User:
        body = {
            "id": request.id,
            "username": request.username,
            "email": request.email,
            "full_name": request.full_name,
            "interests": list(request.interests),
        }
        return user_message(await self.store.create(validated(UserCreate, body)))

    async def GetUser(
        self,
        request: _pb.GetUserRequest,
        context: grpc.aio.ServicerContext[_pb.GetUserRequest, _pb.User],
    ) -> _pb.User:
        return user_message(await self.store.get(check_id("user_id", request.user_id)))

    async def UpdateUser(
        self,
        request: _pb.UpdateUserRequest,
        context: grpc.aio.ServicerContext[_pb.UpdateUserRequest, _pb.User],
    ) -> _pb.User:
        user_id = check_id("user_id", request.user_id)
        body: dict[str, Any] = {}
        if request.HasField("username"):
            body["username"] = request.username
        if request.HasField("email"):
            body["email"] = request.email
        if request.HasField("full_name"):
            body["full_name"] = request.full_name
        if request.HasField("interests"):
            body["interests"] = list(request.interests.values)
        changes = validated(UserUpdate, body)
        return user_message(await self.store.update(user_id, changes))

    async def DeleteUser(
        self,
        request: _pb.DeleteUserRequest,
        context: grpc.aio.ServicerContext[_pb.DeleteUserRequest, _pb.DeleteUserResponse],
    ) -> _pb.DeleteUserResponse:
        user_id = check_id("user_id", request.user_id)
        await self.store.delete(user_id)
        return _pb.DeleteUserResponse(id=user_id, deleted=True)

    async def ListUsers(
        self,
        request: _pb.ListUsersRequest,
        context: grpc.aio.ServicerContext[_pb.ListUsersRequest, _pb.ListUsersResponse],
    ) -> _pb.ListUsersResponse:
        page = request.page or 1
        per_page = request.per_page or DEFAULT_PER_PAGE
        items, total = await self.store.list(page, per_page)
        return _pb.ListUsersResponse(
            items=[user_message(user) for user in items],
            total=total,
            page=page,
            per_page=per_page,
        )


def user_message(user: User) -> _pb.User:
    """``user`` as its gRPC message."""
    return _pb.User(
        id=user.id,
        username=user.username,
        email=user.email,
        full_name=user.full_name,
        interests=user.interests,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )
