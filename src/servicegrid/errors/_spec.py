"""Seed 000's error categories, severities and retry strategies, and one row of the table."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ErrorCategory", "ErrorSeverity", "ErrorSpec", "RetryStrategy"]


class ErrorCategory(enum.Enum):
    """What kind of failure it was (seed 000)."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    INVALID_ARGUMENT = "invalid_argument"
    PERMISSION_DENIED = "permission_denied"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


class ErrorSeverity(enum.Enum):
    """How bad it is for the caller (seed 000)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RetryStrategy(enum.Enum):
    """How to retry it (seed 000); ``NONE`` means the error is not retryable."""

    NONE = "none"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the error table."""

    grpc_code: str
    http_status: int
    category: ErrorCategory
    severity: ErrorSeverity
    retry_strategy: RetryStrategy

    @property
    def retryable(self) -> bool:
        return self.retry_strategy is not RetryStrategy.NONE
