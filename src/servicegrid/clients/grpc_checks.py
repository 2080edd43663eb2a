"""Client-side checks of gRPC request arguments: a bad one fails before any RPC is sent."""

from __future__ import annotations

from typing import TypeVar, cast

from google.protobuf.message import Message

from servicegrid.errors import ValidationError
from servicegrid.transports.grpc import as_rpc_error

__all__ = ["invalid_argument", "require_message", "require_strings"]

M = TypeVar("M", bound=Message)


def invalid_argument(service: str, field: str, message: str) -> ValidationError:
    """The ValidationError for one bad argument, raised before any RPC is sent.

    It is also a ``grpc.RpcError`` (``INVALID_ARGUMENT``), as every error of the gRPC clients is.
    """
    error = ValidationError.for_field(field, message, service=service)
    return cast(ValidationError, as_rpc_error(error))


def require_strings(service: str, field: str, value: object) -> list[str]:
    """``value`` as a list if it is a non-empty list or tuple of str; else a ValidationError."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise invalid_argument(
            service, field, f"must be a list of strings, got {type(value).__name__}"
        )
    if not value:
        raise invalid_argument(service, field, "must not be empty")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid_argument(
                service, f"{field}[{index}]", f"must be a string, got {type(item).__name__}"
            )
    return list(value)


def require_message(service: str, field: str, value: object, kind: type[M]) -> M:
    """``value`` if it is a ``kind`` message; else a ValidationError naming ``field``."""
    if not isinstance(value, kind):
        raise invalid_argument(
            service, field, f"must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value
