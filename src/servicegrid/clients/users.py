"""Seed 002's user service clients: ``UserServiceClient`` (REST) and ``UserServiceGRPCClient``.

.. code-block:: python

    client = UserServiceClient()                 # discovery:///user-service (:8001)
    user_data = await client.get_user("user-123")
    await client.aclose()

    client = UserServiceGRPCClient()             # user-service-grpc (:50061)
    await client.connect()
    user_data = await client.get_user("user-123")
    await client.aclose()

Both have the same methods and answer with the same dicts, the REST API's JSON:
a user is ``{"id", "username", "email", "full_name", "interests", "created_at",
"updated_at"}``. Errors are typed: ResourceNotFoundError (404 / NOT_FOUND),
ConflictError (409 / ALREADY_EXISTS), ValidationError (422 / INVALID_ARGUMENT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servicegrid.clients.app_grpc import AppGrpcClient
from servicegrid.clients.app_rest import AppRestClient, message_dict
from servicegrid.proto import common_pb2, user_service_pb2, user_service_pb2_grpc

__all__ = ["UserServiceClient", "UserServiceGRPCClient"]

_pb = user_service_pb2


def _changes(
    username: str | None,
    email: str | None,
    full_name: str | None,
    interests: Sequence[str] | None,
) -> dict[str, Any]:
    """The fields an update sets: those given (None: unchanged)."""
    given = {"username": username, "email": email, "full_name": full_name}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if interests is not None:
        changes["interests"] = list(interests)
    return changes


class UserServiceClient(AppRestClient):
    """The user service over REST (``/users``); every method raises a ServiceError."""

    catalogue_name = "users"

    async def create_user(
        self,
        username: str,
        email: str,
        full_name: str = "",
        interests: Sequence[str] = (),
        *,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Create a user; without ``user_id`` the service picks one (``user-<12 hex>``)."""
        body: dict[str, Any] = {
            "username": username,
            "email": email,
            "full_name": full_name,
            "interests": list(interests),
        }
        if user_id is not None:
            body["id"] = user_id
        result: dict[str, Any] = await self._json("POST", "/users", body=body)
        return result

    async def get_user(self, user_id: str) -> dict[str, Any]:
        """The user ``user_id``; ResourceNotFoundError if there is none."""
        result: dict[str, Any] = await self._json("GET", f"/users/{self._id('user_id', user_id)}")
        return result

    async def update_user(
        self,
        user_id: str,
        *,
        username: str | None = None,
        email: str | None = None,
        full_name: str | None = None,
        interests: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change the fields given (None: unchanged); the user as it is now."""
        path = f"/users/{self._id('user_id', user_id)}"
        body = _changes(username, email, full_name, interests)
        result: dict[str, Any] = await self._json("PATCH", path, body=body)
        return result

    async def delete_user(self, user_id: str) -> dict[str, Any]:
        """Delete the user: ``{"id", "deleted": True}``."""
        path = f"/users/{self._id('user_id', user_id)}"
        result: dict[str, Any] = await self._json("DELETE", path)
        return result

    async def list_users(self, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        """One page of users in creation order: ``{"items", "total", "page", "per_page"}``."""
        params = {"page": page, "per_page": per_page}
        result: dict[str, Any] = await self._json("GET", "/users", params=params)
        return result


class UserServiceGRPCClient(AppGrpcClient):
    """The user service over gRPC (``servicegrid.v1.UserService``), answering as the REST client.

    Every method raises a ServiceError that is also a ``grpc.RpcError``.
    """

    catalogue_name = "users"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["UserService"].full_name
    stub_class = user_service_pb2_grpc.UserServiceStub

    async def create_user(
        self,
        username: str,
        email: str,
        full_name: str = "",
        interests: Sequence[str] = (),
        *,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Create a user; without ``user_id`` the service picks one (``user-<12 hex>``)."""
        request = _pb.CreateUserRequest(
            id=user_id or "",
            username=username,
            email=email,
            full_name=full_name,
            interests=list(interests),
        )
        return message_dict(await self._rpc("CreateUser", request, idempotent=False))

    async def get_user(self, user_id: str) -> dict[str, Any]:
        """The user ``user_id``; ResourceNotFoundError if there is none."""
        request = _pb.GetUserRequest(user_id=self._id("user_id", user_id))
        return message_dict(await self._rpc("GetUser", request))

    async def update_user(
        self,
        user_id: str,
        *,
        username: str | None = None,
        email: str | None = None,
        full_name: str | None = None,
        interests: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change the fields given (None: unchanged); the user as it is now."""
        changes = _changes(username, email, full_name, None)
        request = _pb.UpdateUserRequest(user_id=self._id("user_id", user_id), **changes)
        if interests is not None:
            request.interests.CopyFrom(common_pb2.StringList(values=list(interests)))
        return message_dict(await self._rpc("UpdateUser", request, idempotent=False))

    async def delete_user(self, user_id: str) -> dict[str, Any]:
        """Delete the user: ``{"id", "deleted": True}``."""
        request = _pb.DeleteUserRequest(user_id=self._id("user_id", user_id))
        return message_dict(await self._rpc("DeleteUser", request))

    async def list_users(self, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        """One page of users in creation order: ``{"items", "total", "page", "per_page"}``."""
        request = _pb.ListUsersRequest(page=page, per_page=per_page)
        return message_dict(await self._rpc("ListUsers", request))
