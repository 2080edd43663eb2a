"""The one table: each class's gRPC code, HTTP status, category, severity and retry strategy,
and the class each status becomes when it arrives from the wire."""

from __future__ import annotations

from typing import Any, Final

from servicegrid.errors._spec import ErrorCategory, ErrorSeverity, ErrorSpec, RetryStrategy
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
    ServiceUnavailable,
    ServiceUnavailableError,
    TransportError,
    Unimplemented,
    UnknownServiceError,
    ValidationError,
)

_C, _S, _R = ErrorCategory, ErrorSeverity, RetryStrategy
_INVALID, _EXHAUSTED = _C.INVALID_ARGUMENT, _C.RESOURCE_EXHAUSTED

ERROR_TABLE: Final[dict[type[ServiceError], ErrorSpec]] = {
    # class: (gRPC code, HTTP status, category, severity, retry strategy)
    ServiceError: ErrorSpec("UNKNOWN", 500, _C.INTERNAL, _S.MEDIUM, _R.EXPONENTIAL),
    ServiceUnavailableError: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.HIGH, _R.EXPONENTIAL),
    ServiceUnavailable: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.HIGH, _R.NONE),
    DiscoveryError: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.HIGH, _R.EXPONENTIAL),
    UnknownServiceError: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.MEDIUM, _R.NONE),
    TransportError: ErrorSpec("UNAVAILABLE", 503, _C.NETWORK, _S.HIGH, _R.EXPONENTIAL),
    ConnectError: ErrorSpec("UNAVAILABLE", 503, _C.NETWORK, _S.HIGH, _R.EXPONENTIAL),
    ConnectionLost: ErrorSpec("UNAVAILABLE", 502, _C.NETWORK, _S.HIGH, _R.EXPONENTIAL),
    DeadlineExceeded: ErrorSpec("DEADLINE_EXCEEDED", 504, _C.TIMEOUT, _S.MEDIUM, _R.LINEAR),
    ConnectTimeout: ErrorSpec("DEADLINE_EXCEEDED", 504, _C.TIMEOUT, _S.MEDIUM, _R.LINEAR),
    ReadTimeout: ErrorSpec("DEADLINE_EXCEEDED", 504, _C.TIMEOUT, _S.MEDIUM, _R.LINEAR),
    PolicyError: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.MEDIUM, _R.NONE),
    RateLimited: ErrorSpec("RESOURCE_EXHAUSTED", 429, _C.RESOURCE_EXHAUSTED, _S.MEDIUM, _R.NONE),
    BulkheadFull: ErrorSpec("RESOURCE_EXHAUSTED", 429, _C.RESOURCE_EXHAUSTED, _S.MEDIUM, _R.NONE),
    ClientStateError: ErrorSpec("FAILED_PRECONDITION", 500, _C.INTERNAL, _S.MEDIUM, _R.NONE),
    RetryBudgetExhausted: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.HIGH, _R.NONE),
    MaxRetriesExceededError: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.HIGH, _R.NONE),
    InjectedFault: ErrorSpec("UNAVAILABLE", 503, _C.UNAVAILABLE, _S.LOW, _R.EXPONENTIAL),
    RemoteError: ErrorSpec("UNKNOWN", 500, _C.INTERNAL, _S.MEDIUM, _R.EXPONENTIAL),
    ClientError: ErrorSpec("INVALID_ARGUMENT", 400, _C.INVALID_ARGUMENT, _S.LOW, _R.NONE),
    ValidationError: ErrorSpec("INVALID_ARGUMENT", 422, _C.INVALID_ARGUMENT, _S.LOW, _R.NONE),
    ResourceNotFoundError: ErrorSpec("NOT_FOUND", 404, _C.INVALID_ARGUMENT, _S.LOW, _R.NONE),
    ConflictError: ErrorSpec("ALREADY_EXISTS", 409, _C.INVALID_ARGUMENT, _S.LOW, _R.NONE),
    PermissionDenied: ErrorSpec("PERMISSION_DENIED", 403, _C.PERMISSION_DENIED, _S.HIGH, _R.NONE),
    AuthenticationError: ErrorSpec("UNAUTHENTICATED", 401, _C.PERMISSION_DENIED, _S.HIGH, _R.NONE),
    FailedPrecondition: ErrorSpec(
        "FAILED_PRECONDITION", 412, _C.INVALID_ARGUMENT, _S.MEDIUM, _R.NONE
    ),
    ModelNotLoaded: ErrorSpec("FAILED_PRECONDITION", 503, _C.UNAVAILABLE, _S.MEDIUM, _R.FIXED),
    DeviceUnavailableError: ErrorSpec(
        "FAILED_PRECONDITION", 503, _C.UNAVAILABLE, _S.CRITICAL, _R.NONE
    ),
    PayloadTooLarge: ErrorSpec("INVALID_ARGUMENT", 413, _C.INVALID_ARGUMENT, _S.LOW, _R.NONE),
    Cancelled: ErrorSpec("CANCELLED", 499, _C.INTERNAL, _S.LOW, _R.NONE),
    ResourceExhausted: ErrorSpec(
        "RESOURCE_EXHAUSTED", 429, _C.RESOURCE_EXHAUSTED, _S.HIGH, _R.FIXED
    ),
    GpuUnavailable: ErrorSpec("RESOURCE_EXHAUSTED", 503, _C.RESOURCE_EXHAUSTED, _S.HIGH, _R.FIXED),
    ServerError: ErrorSpec("INTERNAL", 500, _C.INTERNAL, _S.HIGH, _R.EXPONENTIAL),
    InvalidResponse: ErrorSpec("INTERNAL", 502, _C.INTERNAL, _S.HIGH, _R.NONE),
    InternalError: ErrorSpec("INTERNAL", 500, _C.INTERNAL, _S.CRITICAL, _R.EXPONENTIAL),
    Unimplemented: ErrorSpec("UNIMPLEMENTED", 501, _C.INTERNAL, _S.HIGH, _R.NONE),
    DataLoss: ErrorSpec("DATA_LOSS", 500, _C.INTERNAL, _S.CRITICAL, _R.NONE),
}

for _cls, _spec in ERROR_TABLE.items():
    _cls.spec = _spec
    _cls.retryable = _spec.retryable
    _cls.grpc_code = _spec.grpc_code
    _cls.http_status = _spec.http_status
    _cls.category = _spec.category
    _cls.severity = _spec.severity
    _cls.retry_strategy = _spec.retry_strategy

# The class each status becomes when it arrives from the wire.
_FROM_GRPC: Final[dict[str, type[ServiceError]]] = {
    "CANCELLED": Cancelled,
    "UNKNOWN": ServerError,
    "INVALID_ARGUMENT": ValidationError,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "NOT_FOUND": ResourceNotFoundError,
    "ALREADY_EXISTS": ConflictError,
    "PERMISSION_DENIED": PermissionDenied,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "FAILED_PRECONDITION": FailedPrecondition,
    "ABORTED": ConflictError,
    "OUT_OF_RANGE": ValidationError,
    "UNIMPLEMENTED": Unimplemented,
    "INTERNAL": InternalError,
    "UNAVAILABLE": ServiceUnavailableError,
    "DATA_LOSS": DataLoss,
    "UNAUTHENTICATED": AuthenticationError,
}

_FROM_HTTP: Final[dict[int, type[ServiceError]]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: ResourceNotFoundError,
    408: DeadlineExceeded,
    409: ConflictError,
    412: FailedPrecondition,
    422: ValidationError,
    429: ResourceExhausted,
    499: Cancelled,
    500: InternalError,
    501: Unimplemented,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: DeadlineExceeded,
}


def error_for_grpc_code(code: str, message: str = "", **kw: Any) -> ServiceError:
    """Build the error for a gRPC status code given by name (``"UNAVAILABLE"``)."""
    cls = _FROM_GRPC.get(code.upper(), ServerError)
    return cls(message or f"{cls.default_message} (gRPC {code.upper()})", **kw)


def error_for_http_status(status: int, message: str = "", **kw: Any) -> ServiceError:
    """Build the error for an HTTP status >= 400; unlisted 4xx are ClientError, 5xx ServerError."""
    if status < 400:
        raise ValueError(f"HTTP {status} is not an error status")
    cls = _FROM_HTTP.get(status) or (ClientError if status < 500 else ServerError)
    return cls(message or f"{cls.default_message} (HTTP {status})", **kw)


def is_retryable(exc: BaseException) -> bool:
    """True when sending the same call again may succeed; foreign exceptions are never retried."""
    return isinstance(exc, ServiceError) and exc.retryable
