"""The one seam every resilience policy implements.

A policy wraps "the rest of the call": ``inner`` is a zero-argument callable
that runs the next policy (or, innermost, the real call). Sync and async
callers go through the same policy object, so HTTP and gRPC, threads and
tasks share one set of semantics and one piece of state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Gate", "Policy"]

T = TypeVar("T")


@runtime_checkable
class Policy(Protocol):
    """Wraps one call. ``invoke`` for sync callers, ``ainvoke`` for async ones."""

    def invoke(self, inner: Callable[[], T]) -> T:
        """Run ``inner`` under this policy in the calling thread."""
        ...

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        """Await ``inner()`` under this policy in the calling task."""
        ...


@runtime_checkable
class Gate(Protocol):
    """A policy that can tell, without side effects, whether it would admit a call later."""

    def admits_after(self, delay: float) -> bool:
        """Whether a call made ``delay`` seconds from now could be admitted (advisory)."""
        ...
