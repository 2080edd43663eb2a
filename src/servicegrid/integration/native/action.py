"""What a native action is: its JSON Schemas, the call that runs it, and checks beyond the schema.

Each action module (:mod:`.embedding`, :mod:`.reranking`, :mod:`.documents`) declares one
:class:`NativeAction`; :mod:`.catalogue` lists them. A handler gets its typed client from a
:class:`ClientSource` (the runner), the input already checked against the schema, and the
per-attempt timeout; it converts JSON to proto and back.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeAlias, TypeVar

from servicegrid.clients.grpc_base import GrpcServiceClient
from servicegrid.integration.json_checks import schema_key

__all__ = [
    "INT32",
    "STRINGS",
    "ClientSource",
    "InputCheck",
    "InputProblem",
    "NativeAction",
    "NativeHandler",
    "object_schema",
]

C = TypeVar("C", bound=GrpcServiceClient)


class ClientSource(Protocol):
    """Where a handler gets the typed client of a native service."""

    def client(self, service: str, kind: type[C], create: Callable[..., C]) -> C:
        """The ``kind`` client of ``service``, made by ``create(config, ...)`` on first use."""
        ...


NativeHandler: TypeAlias = Callable[
    [ClientSource, dict[str, Any], float | None], Awaitable[dict[str, Any]]
]
"""Runs an action: (clients, input that matches the schema, seconds per attempt) -> output."""

InputCheck: TypeAlias = Callable[[Mapping[str, Any]], object]
"""A check a schema cannot express; raises :class:`InputProblem`, its result is ignored."""


class InputProblem(Exception):
    """An input field that matches the schema but still cannot be used (``field``: ``message``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class NativeAction:
    """One native action: the JSON Schemas (draft 2020-12) of its input and output, its handler
    and any check of its input that the schema cannot express."""

    service: str
    action: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    handler: NativeHandler = field(repr=False, compare=False)
    check: InputCheck | None = field(default=None, repr=False, compare=False)
    # made from the schema as declared: a caller editing input_schema changes no validation
    input_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_key", schema_key(self.input_schema))

    @property
    def name(self) -> str:
        """``service.action``, as errors and logs name it."""
        return f"{self.service}.{self.action}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: service, action, description, input_schema, output_schema."""
        return {
            "service": self.service,
            "action": self.action,
            "description": self.description,
            "input_schema": copy.deepcopy(self.input_schema),
            "output_schema": copy.deepcopy(self.output_schema),
        }


_SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"
_INT32_MAX: Final = 2**31 - 1

STRINGS: Final = {"type": "array", "items": {"type": "string"}}
"""An array of strings."""

INT32: Final = {"type": "integer", "maximum": _INT32_MAX}
"""An integer a proto ``int32`` can hold (set ``minimum`` where it is used)."""


def object_schema(
    properties: dict[str, Any], required: list[str], *, closed: bool, root: bool = True
) -> dict[str, Any]:
    """An object schema; ``closed`` refuses other properties, ``root`` names the draft."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if root:
        schema = {"$schema": _SCHEMA, **schema}
    if closed:
        schema["additionalProperties"] = False
    return schema
