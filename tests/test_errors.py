"""The error table: every class is classified once, and the wire mappings follow it."""

from __future__ import annotations

import asyncio
import inspect

import grpc
import pytest

from servicegrid import errors
from servicegrid.errors import (
    ERROR_TABLE,
    AuthenticationError,
    Cancelled,
    ClientError,
    ConflictError,
    DataLoss,
    DeadlineExceeded,
    ErrorCategory,
    ErrorSeverity,
    ErrorSpec,
    FailedPrecondition,
    InternalError,
    MaxRetriesExceededError,
    PermissionDenied,
    PolicyError,
    ResourceExhausted,
    ResourceNotFoundError,
    RetryStrategy,
    ServerError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailable,
    ServiceUnavailableError,
    Unimplemented,
    ValidationError,
    error_for_grpc_code,
    error_for_http_status,
    is_retryable,
)

ALL_ERROR_CLASSES = sorted(ERROR_TABLE, key=lambda cls: cls.__name__)


def _module_error_classes() -> list[type[ServiceError]]:
    return [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, ServiceError)
    ]


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_table_class_carries_its_classification(cls: type[ServiceError]) -> None:
    spec = ERROR_TABLE[cls]
    assert isinstance(spec, ErrorSpec)
    assert cls.spec is spec
    assert cls.retryable is spec.retryable
    assert cls.grpc_code == spec.grpc_code
    assert cls.http_status == spec.http_status
    assert cls.category is spec.category
    assert cls.severity is spec.severity
    assert cls.retry_strategy is spec.retry_strategy
    assert isinstance(cls.category, ErrorCategory)
    assert isinstance(cls.severity, ErrorSeverity)
    assert isinstance(cls.grpc_code, str)
    assert cls.grpc_code
    assert 400 <= cls.http_status < 600


@pytest.mark.parametrize("cls", ALL_ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_retryable_means_a_retry_strategy(cls: type[ServiceError]) -> None:
    assert cls.retryable == (cls.retry_strategy is not RetryStrategy.NONE)
    assert is_retryable(cls()) == cls.retryable


def test_every_error_class_in_the_module_has_its_own_row() -> None:
    # A class missing from the table would silently inherit its parent's verdict.
    missing = [cls.__name__ for cls in _module_error_classes() if cls not in ERROR_TABLE]
    assert missing == []


def test_service_timeout_error_is_the_seed_000_name_for_deadline_exceeded() -> None:
    assert ServiceTimeoutError is DeadlineExceeded


# --- HTTP status → class -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, ValidationError, False),
        (422, ValidationError, False),
        (401, AuthenticationError, False),
        (403, PermissionDenied, False),
        (404, ResourceNotFoundError, False),
        (408, DeadlineExceeded, True),
        (409, ConflictError, False),
        (412, FailedPrecondition, False),
        (429, ResourceExhausted, True),
        (499, Cancelled, False),
        (500, InternalError, True),
        (501, Unimplemented, False),
        (502, ServiceUnavailableError, True),
        (503, ServiceUnavailableError, True),
        (504, DeadlineExceeded, True),
    ],
)
def test_error_for_http_status_listed(
    status: int, cls: type[ServiceError], retryable: bool
) -> None:
    error = error_for_http_status(status)
    assert type(error) is cls
    assert error.retryable is retryable
    assert is_retryable(error) is retryable
    assert str(status) in error.message


@pytest.mark.parametrize("status", [402, 405, 410, 413, 415, 418, 451])
def test_other_4xx_are_client_errors_and_not_retryable(status: int) -> None:
    error = error_for_http_status(status)
    assert type(error) is ClientError
    assert not is_retryable(error)


@pytest.mark.parametrize("status", [505, 507, 511, 599])
def test_other_5xx_are_server_errors_and_retryable(status: int) -> None:
    error = error_for_http_status(status)
    assert type(error) is ServerError
    assert is_retryable(error)


@pytest.mark.parametrize("status", [-1, 0, 100, 200, 204, 301, 399])
def test_non_error_status_is_refused(status: int) -> None:
    with pytest.raises(ValueError, match=str(status)):
        error_for_http_status(status)


def test_error_for_http_status_passes_message_and_fields() -> None:
    error = error_for_http_status(429, "slow down", service="embed", retry_after=2.5)
    assert error.message == "slow down"
    assert error.service == "embed"
    assert error.retry_after == 2.5
    assert str(error) == "[embed] slow down"


# --- gRPC code → class -------------------------------------------------------------------------

GRPC_EXPECTED: dict[str, tuple[type[ServiceError], bool]] = {
    "CANCELLED": (Cancelled, False),
    "UNKNOWN": (ServerError, True),
    "INVALID_ARGUMENT": (ValidationError, False),
    "DEADLINE_EXCEEDED": (DeadlineExceeded, True),
    "NOT_FOUND": (ResourceNotFoundError, False),
    "ALREADY_EXISTS": (ConflictError, False),
    "PERMISSION_DENIED": (PermissionDenied, False),
    "RESOURCE_EXHAUSTED": (ResourceExhausted, True),
    "FAILED_PRECONDITION": (FailedPrecondition, False),
    "ABORTED": (ConflictError, False),
    "OUT_OF_RANGE": (ValidationError, False),
    "UNIMPLEMENTED": (Unimplemented, False),
    "INTERNAL": (InternalError, True),
    "UNAVAILABLE": (ServiceUnavailableError, True),
    "DATA_LOSS": (DataLoss, False),
    "UNAUTHENTICATED": (AuthenticationError, False),
}


def test_the_grpc_table_covers_all_16_error_codes() -> None:
    codes = {code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK}
    assert len(codes) == 16
    assert set(GRPC_EXPECTED) == codes


@pytest.mark.parametrize("code", sorted(GRPC_EXPECTED))
def test_error_for_grpc_code(code: str) -> None:
    cls, retryable = GRPC_EXPECTED[code]
    error = error_for_grpc_code(code)
    assert type(error) is cls
    assert is_retryable(error) is retryable
    assert code in error.message
    # the name is accepted in any case
    assert type(error_for_grpc_code(code.lower())) is cls


def test_unknown_grpc_code_name_is_a_server_error() -> None:
    assert type(error_for_grpc_code("NO_SUCH_CODE")) is ServerError


def test_error_for_grpc_code_passes_fields() -> None:
    error = error_for_grpc_code("NOT_FOUND", resource_type="model", resource_id="bge-m3")
    assert isinstance(error, ResourceNotFoundError)
    assert (error.resource_type, error.resource_id) == ("model", "bge-m3")
    assert "NOT_FOUND" in error.message


# --- seed 003 fields ---------------------------------------------------------------------------


def test_validation_error_lists_validation_errors_in_one_shape() -> None:
    ours = [{"field": "texts", "message": "must not be empty", "type": "value_error"}]
    assert ValidationError("bad", validation_errors=ours).validation_errors == ours
    assert ValidationError().validation_errors == []
    # FastAPI's shape (its location part dropped), and a bare field/message, become ours
    fastapi = [{"loc": ["body", "steps", 0, "action"], "msg": "Field required", "type": "missing"}]
    assert ValidationError(validation_errors=fastapi).validation_errors == [
        {"field": "steps.0.action", "message": "Field required", "type": "missing"}
    ]
    assert ValidationError(
        validation_errors=[{"field": "x", "message": "bad"}]
    ).validation_errors == [{"field": "x", "message": "bad", "type": "value_error"}]


def test_validation_error_for_one_field() -> None:
    error = ValidationError.for_field("texts[1]", "must not be empty", service="embedding")
    assert str(error) == "[embedding] texts[1]: must not be empty"
    assert error.validation_errors == [
        {"field": "texts[1]", "message": "must not be empty", "type": "value_error"}
    ]
    assert not ValidationError().retryable


def test_resource_not_found_names_the_resource() -> None:
    error = ResourceNotFoundError(resource_type="collection", resource_id="docs")
    assert error.resource_type == "collection"
    assert error.resource_id == "docs"
    assert "collection" in str(error)
    assert "docs" in str(error)
    assert "not found" in str(error)
    bare = ResourceNotFoundError()
    assert bare.resource_type is None
    assert bare.resource_id is None


def test_service_unavailable_error_names_the_service() -> None:
    error = ServiceUnavailableError("down", service_name="chroma")
    assert error.service_name == "chroma"
    assert error.service == "chroma"
    assert str(error) == "[chroma] down"
    assert error.retryable
    assert ServiceUnavailableError().service_name is None


def test_max_retries_exceeded_keeps_attempts_and_last_error() -> None:
    last = ServiceUnavailableError("down")
    error = MaxRetriesExceededError(attempts=3, last_error=last)
    assert error.attempts == 3
    assert error.last_error is last
    assert "3" in error.message
    assert not error.retryable
    assert isinstance(error, PolicyError)


def test_breaker_rejection_is_unavailable_but_not_retryable() -> None:
    error = ServiceUnavailable(service="embed", retry_after=4.0)
    assert isinstance(error, ServiceUnavailableError)
    assert isinstance(error, PolicyError)
    assert not error.retryable
    assert not is_retryable(error)
    assert error.service_name == "embed"
    assert error.retry_after == 4.0
    assert error.http_status == 503
    assert error.grpc_code == "UNAVAILABLE"


# --- to_dict and foreign errors ----------------------------------------------------------------

BASE_KEYS = {
    "error",
    "message",
    "service",
    "category",
    "severity",
    "retryable",
    "grpc_code",
    "http_status",
}


def test_to_dict_has_the_documented_keys() -> None:
    body = ResourceExhausted("queue full", service="embed").to_dict()
    assert set(body) == BASE_KEYS
    assert body == {
        "error": "ResourceExhausted",
        "message": "queue full",
        "service": "embed",
        "category": "resource_exhausted",
        "severity": "high",
        "retryable": True,
        "grpc_code": "RESOURCE_EXHAUSTED",
        "http_status": 429,
    }


def test_to_dict_adds_retry_after_and_details_only_when_set() -> None:
    body = ServiceUnavailableError("down", retry_after=3.0, details={"status_code": 503}).to_dict()
    assert set(body) == BASE_KEYS | {"retry_after", "details"}
    assert body["retry_after"] == 3.0
    assert body["details"] == {"status_code": 503}


@pytest.mark.parametrize(
    "error",
    [
        ValueError("x"),
        ConnectionError("refused"),
        TimeoutError(),
        OSError("io"),
        RuntimeError("boom"),
        asyncio.CancelledError(),
        KeyboardInterrupt(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_foreign_exceptions_are_never_retryable(error: BaseException) -> None:
    assert is_retryable(error) is False
