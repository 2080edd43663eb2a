"""The exception classes; what each one means for retry and status is in ``_table``."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Self

from servicegrid.errors._spec import ErrorCategory, ErrorSeverity, ErrorSpec, RetryStrategy


class ServiceError(Exception):
    """Root of every servicegrid error.

    ``service`` names the service the call was for, ``details`` carries
    structured context, and ``retry_after`` (seconds) is the server's hint
    from ``Retry-After`` or a gRPC trailer, if it sent one.
    """

    spec: ClassVar[ErrorSpec]
    retryable: ClassVar[bool]
    grpc_code: ClassVar[str]
    http_status: ClassVar[int]
    category: ClassVar[ErrorCategory]
    severity: ClassVar[ErrorSeverity]
    retry_strategy: ClassVar[RetryStrategy]

    default_message: ClassVar[str] = "service call failed"

    def __init__(
        self,
        message: str = "",
        *,
        service: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.service = service
        self.details: dict[str, Any] = {} if details is None else dict(details)
        self.retry_after = retry_after
        super().__init__(self.message)

    @classmethod
    def _made(cls, message: str, *, service: str | None, retry_after: float | None) -> Self:
        """The error, built without the ``__init__`` chain: for hot paths (a breaker's
        rejection) where these three fields are all there is to say."""
        error = cls.__new__(cls, message)
        error.message = message
        error.service = service
        error.details = {}
        error.retry_after = retry_after
        return error

    def __str__(self) -> str:
        return f"[{self.service}] {self.message}" if self.service else self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: what a REST error body or a log line carries."""
        body: dict[str, Any] = {
            "error": type(self).__name__,
            "message": self.message,
            "service": self.service,
            "category": self.category.value,
            "severity": self.severity.value,
            "retryable": self.retryable,
            "grpc_code": self.grpc_code,
            "http_status": self.http_status,
        }
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.details:
            body["details"] = self.details
        return body


class ServiceUnavailableError(ServiceError):
    """The service cannot serve right now; ``service_name`` says which (seed 003)."""

    default_message = "service unavailable"

    def __init__(
        self,
        message: str = "",
        *,
        service_name: str | None = None,
        service: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            service=service if service is not None else service_name,
            details=details,
            retry_after=retry_after,
        )

    @property
    def service_name(self) -> str | None:
        return self.service


class PolicyError(ServiceError):
    """A local resilience policy refused or ended the call."""

    default_message = "call refused by a local policy"


class ServiceUnavailable(ServiceUnavailableError, PolicyError):
    """The circuit is open: the call was rejected without reaching the service (seed 001)."""

    default_message = "circuit breaker is open"


class DiscoveryError(ServiceUnavailableError):
    """Discovery could not say where the service is: every backend failed or timed out."""

    default_message = "service discovery failed"


class UnknownServiceError(DiscoveryError):
    """No discovery backend knows the service: a misspelt name, or one never registered."""

    default_message = "no instance of the service is known"


class ClientStateError(PolicyError, RuntimeError):
    """The client cannot make calls in its state: it was closed, or is used where it cannot be."""

    default_message = "the client cannot make calls now"


class TransportError(ServiceError):
    """No answer came back from the service."""

    default_message = "transport failure"


class ConnectError(TransportError):
    """Could not open a connection (refused, unresolvable, TLS handshake failed)."""

    default_message = "could not connect"


class ConnectionLost(TransportError):
    """The connection closed before the answer arrived."""

    default_message = "connection lost"


class DeadlineExceeded(ServiceError):
    """The call ran out of time, locally or at the server."""

    default_message = "deadline exceeded"


ServiceTimeoutError = DeadlineExceeded
"""Seed 000's name for :class:`DeadlineExceeded`."""


class ConnectTimeout(DeadlineExceeded):
    """No connection within the connect timeout."""

    default_message = "timed out connecting"


class ReadTimeout(DeadlineExceeded):
    """No answer within the read timeout."""

    default_message = "timed out waiting for the answer"


class RateLimited(PolicyError):
    """A local rate limiter refused the call (fail-fast mode)."""

    default_message = "rate limit exceeded"


class BulkheadFull(PolicyError):
    """Too many calls in flight and the waiting queue is full."""

    default_message = "bulkhead full"


class RetryBudgetExhausted(PolicyError):
    """A retry was due but the retry budget for the target is spent."""

    default_message = "retry budget exhausted"


class MaxRetriesExceededError(PolicyError):
    """Every attempt failed; ``attempts`` and ``last_error`` say how (seed 003)."""

    default_message = "maximum retries exceeded"

    def __init__(
        self,
        message: str = "",
        *,
        attempts: int = 0,
        last_error: BaseException | None = None,
        **kw: Any,
    ) -> None:
        self.attempts = attempts
        self.last_error = last_error
        if not message and last_error is not None:
            message = f"failed after {attempts} attempts: {last_error}"
        super().__init__(message, **kw)


class InjectedFault(PolicyError):
    """Raised on purpose by :class:`servicegrid.resilience.FaultInjection`."""

    default_message = "injected fault"


class RemoteError(ServiceError):
    """The service answered, with an error."""

    default_message = "the service returned an error"


class ClientError(RemoteError):
    """The request was wrong (4xx); sending it again will not help."""

    default_message = "request rejected by the service"


class ServerError(RemoteError):
    """The service failed to handle a valid request (5xx)."""

    default_message = "the service failed"


def field_error(field: str, message: str, type: str = "value_error") -> dict[str, str]:
    """One entry of ``ValidationError.validation_errors``: which field, what is wrong, what kind.

    ``field`` is the path to the bad value as its protocol spells it: dotted for
    JSON bodies (``steps.0.action``), with ``[i]`` for repeated fields of gRPC
    messages (``texts[1]``); ``""`` means the request as a whole.
    """
    return {"field": field, "message": message, "type": type}


def _as_field_error(item: Any) -> dict[str, str]:
    """An entry in any shape errors arrive in (ours, FastAPI's ``loc``/``msg``), as ours."""
    if not isinstance(item, dict):
        return field_error("", str(item))
    field = item.get("field")
    if field is None:
        loc = item.get("loc")
        parts = [str(part) for part in loc] if isinstance(loc, list | tuple) else []
        if len(parts) > 1 and parts[0] in _REQUEST_PARTS:
            parts = parts[1:]
        field = ".".join(parts)
    message = item.get("message", item.get("msg", item.get("problem", "")))
    return field_error(str(field), str(message), str(item.get("type") or "value_error"))


_REQUEST_PARTS: Final = frozenset({"body", "query", "path", "header", "cookie"})


class ValidationError(ClientError):
    """The request did not validate; ``validation_errors`` lists why (seed 003).

    Each entry is ``{"field", "message", "type"}`` (see :func:`field_error`);
    entries given in FastAPI's ``{"loc", "msg", "type"}`` shape are converted.
    """

    default_message = "validation failed"

    def __init__(self, message: str = "", *, validation_errors: Any = None, **kw: Any) -> None:
        if isinstance(validation_errors, dict):
            validation_errors = [validation_errors]
        self.validation_errors: list[dict[str, str]] = [
            _as_field_error(item) for item in (validation_errors or ())
        ]
        super().__init__(message, **kw)

    @classmethod
    def for_field(
        cls, field: str, message: str, *, type: str = "value_error", **kw: Any
    ) -> ValidationError:
        """The error for one bad field; its message reads ``"field: message"``."""
        text = f"{field}: {message}" if field else message
        return cls(text, validation_errors=[field_error(field, message, type)], **kw)


class ResourceNotFoundError(ClientError):
    """A named resource does not exist (seed 003)."""

    default_message = "resource not found"

    def __init__(
        self,
        message: str = "",
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        **kw: Any,
    ) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        if not message and (resource_type or resource_id):
            message = f"{resource_type or 'resource'} {resource_id or ''} not found".replace(
                "  ", " "
            )
        super().__init__(message, **kw)


class ConflictError(ClientError):
    """The resource already exists or changed underneath the request."""

    default_message = "conflict"


class PermissionDenied(ClientError):
    """The caller is not allowed to do this."""

    default_message = "permission denied"


class AuthenticationError(ClientError):
    """The caller did not prove who it is."""

    default_message = "authentication required"


class FailedPrecondition(ClientError):
    """The system is not in a state where this can run."""

    default_message = "failed precondition"


class ModelNotLoaded(FailedPrecondition):
    """The model this call needs is not loaded yet; waiting helps (seed 000)."""

    default_message = "model not loaded"


class DeviceUnavailableError(FailedPrecondition):
    """The configured GPU is not there; the service must not start (seed 000: fail fast)."""

    default_message = "the configured device is not available"


class Cancelled(ClientError):
    """The call was cancelled before it finished."""

    default_message = "cancelled"


class PayloadTooLarge(ClientError):
    """The request (or one file in it) is larger than the service takes (HTTP 413)."""

    default_message = "payload too large"


class ResourceExhausted(ClientError):
    """The service is out of capacity (queue full, GPU memory, quota)."""

    default_message = "resource exhausted"


class GpuUnavailable(ResourceExhausted):
    """No GPU (or not enough GPU memory) for the request."""

    default_message = "no GPU available"


class InvalidResponse(ServerError):
    """The service answered, but not with what its contract promises (not JSON, wrong schema)."""

    default_message = "the service answered with something it should not have"


class InternalError(ServerError):
    """The service hit a bug or an unexpected failure."""

    default_message = "internal error"


class Unimplemented(ServerError):
    """The service does not implement this call."""

    default_message = "not implemented"


class DataLoss(ServerError):
    """Unrecoverable data loss or corruption."""

    default_message = "data loss"
