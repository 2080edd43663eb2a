"""servicegrid errors that are also ``requests`` exceptions, for the sync HTTP client.

Seed 001's users write ``except (ServiceUnavailable, requests.RequestException)``.
Each error the sync client raises is a "twin": a subclass of both the
servicegrid class (so the error table still classifies it) and the matching
requests class (so requests-style handlers still catch it).
"""

from __future__ import annotations

from typing import Any

import requests

from servicegrid.errors import (
    ConnectTimeout,
    DeadlineExceeded,
    ReadTimeout,
    RemoteError,
    ServiceError,
    ServiceUnavailable,
    ServiceUnavailableError,
    TransportError,
)

__all__ = ["as_requests_error"]

# Most specific first: the first servicegrid ancestor found picks the requests base.
_REQUESTS_BASE: dict[type[ServiceError], type[requests.RequestException]] = {
    ConnectTimeout: requests.ConnectTimeout,
    ReadTimeout: requests.ReadTimeout,
    DeadlineExceeded: requests.Timeout,
    TransportError: requests.ConnectionError,
    ServiceUnavailable: requests.ConnectionError,
    ServiceUnavailableError: requests.HTTPError,
    RemoteError: requests.HTTPError,
}


_TWINS: dict[type[ServiceError], type[ServiceError]] = {}


def _twin(cls: type[ServiceError]) -> type[ServiceError]:
    twin = _TWINS.get(cls)
    if twin is not None:
        return twin
    base = next(
        (_REQUESTS_BASE[k] for k in cls.__mro__ if k in _REQUESTS_BASE),
        requests.RequestException,
    )
    twin = type(cls.__name__, (cls, base), {"__module__": cls.__module__, "__doc__": cls.__doc__})
    return _TWINS.setdefault(cls, twin)


def as_requests_error(
    error: ServiceError, *, response: Any = None, request: Any = None
) -> ServiceError:
    """A copy of ``error`` that is also a ``requests.RequestException``, fields and all."""
    if isinstance(error, requests.RequestException):
        return error
    twin_cls = _twin(type(error))
    twin = twin_cls.__new__(twin_cls)
    twin.__dict__.update(error.__dict__)
    twin.args = error.args
    twin.response = response  # type: ignore[attr-defined]
    twin.request = request  # type: ignore[attr-defined]
    return twin
