"""One exception hierarchy and one table that classifies it.

Every error a servicegrid client raises is a :class:`ServiceError`. Foreign
exceptions (``grpc.RpcError``, ``httpx.HTTPError``, ``requests.RequestException``)
are translated at the transport boundary and re-raised ``from`` the original.

.. code-block:: text

    ServiceError                        root: retryable, grpc_code, http_status, category, severity
    ├── ServiceUnavailableError         the service cannot serve now (UNAVAILABLE / 503)
    │   ├── ServiceUnavailable          circuit open: rejected locally, without a call
    │   └── DiscoveryError              discovery could not say where the service is
    │       └── UnknownServiceError     no backend knows the service
    ├── TransportError                  no answer came back
    │   ├── ConnectError                could not connect (refused, DNS, TLS)
    │   └── ConnectionLost              connection closed before the answer
    ├── DeadlineExceeded                out of time (alias ServiceTimeoutError)
    │   ├── ConnectTimeout
    │   └── ReadTimeout
    ├── PolicyError                     a local policy refused the call
    │   ├── ClientStateError            the client cannot make calls now (closed); a RuntimeError
    │   ├── RateLimited
    │   ├── BulkheadFull
    │   ├── RetryBudgetExhausted
    │   ├── MaxRetriesExceededError
    │   └── InjectedFault               raised on purpose by fault injection
    └── RemoteError                     the service answered with an error
        ├── ClientError                 any other 4xx
        │   ├── ValidationError
        │   ├── ResourceNotFoundError
        │   ├── ConflictError
        │   ├── PermissionDenied
        │   ├── AuthenticationError
        │   ├── FailedPrecondition
        │   │   ├── ModelNotLoaded
        │   │   └── DeviceUnavailableError  the configured GPU is not there: do not start
        │   ├── Cancelled
        │   ├── PayloadTooLarge         413: the body, or a file in it, is over the limit
        │   └── ResourceExhausted
        │       └── GpuUnavailable
        └── ServerError                 any other 5xx
            ├── InvalidResponse         an answer that breaks the service's contract (502)
            ├── InternalError
            ├── Unimplemented
            └── DataLoss

Retryability is decided here and nowhere else: a class is retryable exactly
when its :class:`RetryStrategy` in :data:`ERROR_TABLE` is not ``NONE``. Whether
an *operation* may be sent again (its idempotency) is the caller's policy, not
a second notion of transience.

``ValidationError.validation_errors`` always has one shape: a list of
``{"field", "message", "type"}`` (:func:`field_error`), whatever produced it.
"""

from __future__ import annotations

from servicegrid.errors._spec import ErrorCategory, ErrorSeverity, ErrorSpec, RetryStrategy
from servicegrid.errors._table import (
    ERROR_TABLE,
    error_for_grpc_code,
    error_for_http_status,
    is_retryable,
)
from servicegrid.errors._tree import (
    AuthenticationError,
    BulkheadFull,
    Cancelled,
    ClientError,
    ClientStateError,
    ConflictError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    DataLoss,
    DeadlineExceeded,
    DeviceUnavailableError,
    DiscoveryError,
    FailedPrecondition,
    GpuUnavailable,
    InjectedFault,
    InternalError,
    InvalidResponse,
    MaxRetriesExceededError,
    ModelNotLoaded,
    PayloadTooLarge,
    PermissionDenied,
    PolicyError,
    RateLimited,
    ReadTimeout,
    RemoteError,
    ResourceExhausted,
    ResourceNotFoundError,
    RetryBudgetExhausted,
    ServerError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailable,
    ServiceUnavailableError,
    TransportError,
    Unimplemented,
    UnknownServiceError,
    ValidationError,
    field_error,
)

__all__ = [
    "ERROR_TABLE",
    "AuthenticationError",
    "BulkheadFull",
    "Cancelled",
    "ClientError",
    "ClientStateError",
    "ConflictError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "DataLoss",
    "DeadlineExceeded",
    "DeviceUnavailableError",
    "DiscoveryError",
    "ErrorCategory",
    "ErrorSeverity",
    "ErrorSpec",
    "FailedPrecondition",
    "GpuUnavailable",
    "InjectedFault",
    "InternalError",
    "InvalidResponse",
    "MaxRetriesExceededError",
    "ModelNotLoaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyError",
    "RateLimited",
    "ReadTimeout",
    "RemoteError",
    "ResourceExhausted",
    "ResourceNotFoundError",
    "RetryBudgetExhausted",
    "RetryStrategy",
    "ServerError",
    "ServiceError",
    "ServiceTimeoutError",
    "ServiceUnavailable",
    "ServiceUnavailableError",
    "TransportError",
    "Unimplemented",
    "UnknownServiceError",
    "ValidationError",
    "error_for_grpc_code",
    "error_for_http_status",
    "field_error",
    "is_retryable",
]

# Shown as servicegrid.errors.X (in tracebacks, reprs and twins), not as the private module.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value
