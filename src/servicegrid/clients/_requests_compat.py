"""servicegrid errors that are also ``requests`` exceptions, for the sync HTTP client.

Seed 001's users write ``except (ServiceUnavailable, requests.RequestException)``.
Each error the sync client raises is a twin (:mod:`servicegrid.transports._twins`):
a subclass of both the servicegrid class (so the error table still classifies
it) and the matching requests class (so requests-style handlers still catch it).
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
from servicegrid.transports._twins import as_twin, twin_class

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


def as_requests_error(
    error: ServiceError, *, response: Any = None, request: Any = None
) -> ServiceError:
    """A copy of ``error`` that is also a ``requests.RequestException``, fields and all."""
    if isinstance(error, requests.RequestException):
        return error
    cls = type(error)
    base = next(
        (_REQUESTS_BASE[k] for k in cls.__mro__ if k in _REQUESTS_BASE),
        requests.RequestException,
    )
    return as_twin(error, twin_class(cls, base), response=response, request=request)
