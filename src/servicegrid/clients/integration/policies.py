"""Seed 003's retry policy per kind of operation: what may be sent again, and how often.

:data:`INTEGRATION_RETRY_POLICIES` is the table the package docstring shows; a
client takes ``retry_policies=`` to replace the rows it names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from servicegrid._validate import check_count, check_number
from servicegrid.errors import ErrorCategory, is_retryable
from servicegrid.resilience import Jitter, RetrySpec

__all__ = [
    "INTEGRATION_RETRY_POLICIES",
    "MAX_RETRY_AFTER",
    "OperationRetryPolicy",
    "OperationType",
]

MAX_RETRY_AFTER: Final = 30.0
"""A Retry-After longer than this (seconds) ends the call (MaxRetriesExceededError) instead
of sleeping."""


class OperationType(enum.Enum):
    """The kinds of operation seed 003 gives their own retry policy."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice has the effect of sending it once: all but CREATE.

        (Executing a workflow is a create that the service deduplicates by its
        ``Idempotency-Key``; registering a service or a workflow is not.)
        """
        return self is not OperationType.CREATE

    def may_resend_after(self, error: BaseException) -> bool:
        """Whether this operation may be sent again after ``error``: when the error table
        calls it retryable, and, unless the operation is idempotent, the service did not
        fail while processing it (category INTERNAL, a 500): it may have taken effect."""
        if not is_retryable(error):
            return False
        return self.idempotent or getattr(error, "category", None) is not ErrorCategory.INTERNAL


@dataclass(frozen=True, slots=True)
class OperationRetryPolicy:
    """``retries`` after the first attempt, with exponential backoff and jitter.

    The wait before retry n is b/2 + uniform(0, b/2) seconds ("Equal Jitter"),
    where b = min(max_delay, base_delay * 2**(n-1)).
    """

    retries: int
    base_delay: float
    max_delay: float
    jitter: Jitter = Jitter.EQUAL

    def __post_init__(self) -> None:
        check_count("retries", self.retries, minimum=0)
        check_number("base_delay", self.base_delay)
        check_number("max_delay", self.max_delay)
        if self.max_delay < self.base_delay:
            raise ValueError(f"max_delay ({self.max_delay}) must be >= base_delay")

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def retry_spec(self, op: OperationType) -> RetrySpec:
        """This policy for operations of kind ``op``, raising MaxRetriesExceededError when spent."""
        return RetrySpec.from_retries(
            self.retries,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            jitter=self.jitter,
            on=op.may_resend_after,
            max_retry_after=MAX_RETRY_AFTER,
        )


INTEGRATION_RETRY_POLICIES: Final[Mapping[OperationType, OperationRetryPolicy]] = MappingProxyType(
    {
        OperationType.CREATE: OperationRetryPolicy(retries=3, base_delay=0.5, max_delay=4.0),
        OperationType.UPDATE: OperationRetryPolicy(retries=3, base_delay=0.5, max_delay=4.0),
        OperationType.DELETE: OperationRetryPolicy(retries=2, base_delay=1.0, max_delay=4.0),
        OperationType.READ: OperationRetryPolicy(retries=2, base_delay=0.5, max_delay=2.0),
    }
)
"""Seed 003's retry policy per operation type."""
