"""``servicegrid serve users``: the REST app and the gRPC servicer over one store."""

from __future__ import annotations

from servicegrid.apps._serving import serve_over_store
from servicegrid.apps.users.rest import create_app
from servicegrid.apps.users.servicer import UserServicer
from servicegrid.apps.users.store import UserStore
from servicegrid.proto import user_service_pb2, user_service_pb2_grpc
from servicegrid.runtime import ServiceRegistration
from servicegrid.settings import Settings

__all__ = ["run_users_service"]


def _registration(store: UserStore) -> ServiceRegistration:
    return ServiceRegistration.from_descriptor(
        user_service_pb2.DESCRIPTOR.services_by_name["UserService"],
        user_service_pb2_grpc.add_UserServiceServicer_to_server,
        UserServicer(store),
    )


async def run_users_service(settings: Settings, *, host: str, port: int, grpc_port: int) -> None:
    """Serve users on REST ``host:port`` and gRPC ``host:grpc_port`` until SIGTERM."""
    await serve_over_store(
        settings,
        "users",
        UserStore.from_settings(settings),
        lambda store: create_app(settings, store=store),
        _registration,
        host=host,
        port=port,
        grpc_port=grpc_port,
    )
