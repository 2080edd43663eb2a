"""Errors that are both a servicegrid error and a foreign library's exception.

Seed 001's users catch ``requests.RequestException``, seed 000's count
``grpc.RpcError`` in a breaker. A "twin" of a servicegrid error class is a
subclass of it and of the foreign class, so the error table still classifies
it and the foreign ``except`` clauses still catch it. Twin classes are made
once per class and cached.
"""

from __future__ import annotations

import threading
from typing import Any

from servicegrid.errors import ServiceError

__all__ = ["as_twin", "twin_class"]

_LOCK = threading.Lock()
_TWINS: dict[tuple[type[ServiceError], type[Exception]], type[ServiceError]] = {}


def twin_class(
    cls: type[ServiceError], foreign: type[Exception], namespace: dict[str, Any] | None = None
) -> type[ServiceError]:
    """The subclass of ``cls`` and ``foreign`` (with ``namespace`` added), made once."""
    key = (cls, foreign)
    twin = _TWINS.get(key)
    if twin is None:
        with _LOCK:
            twin = _TWINS.get(key)
            if twin is None:
                body = {"__module__": cls.__module__, "__doc__": cls.__doc__, **(namespace or {})}
                twin = _TWINS[key] = type(cls.__name__, (cls, foreign), body)
    return twin


def as_twin(error: ServiceError, twin_cls: type[ServiceError], **attributes: Any) -> ServiceError:
    """A copy of ``error`` as an instance of ``twin_cls``: same fields, cause and traceback."""
    twin = twin_cls.__new__(twin_cls)
    twin.__dict__.update(error.__dict__)
    twin.__dict__.update(attributes)
    twin.args = error.args
    twin.__cause__ = error.__cause__
    twin.__context__ = error.__context__
    twin.__suppress_context__ = error.__suppress_context__
    return twin.with_traceback(error.__traceback__)
