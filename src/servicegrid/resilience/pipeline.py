"""Policies composed into one call path, outermost first.

.. code-block:: python

    pipeline = Pipeline(
        Timeout(10.0),
        Retry(attempts=4, backoff=ExponentialBackoff()),
        CircuitBreaker(failure_threshold=5, recovery_timeout=30.0),
        Bulkhead(32),
        TokenBucket(rate=50.0, burst=100),
    )
    result = pipeline.call(fetch, url)           # sync
    result = await pipeline.acall(afetch, url)   # async

The same pipeline object serves sync and async callers; its policies keep
one set of state for both.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from servicegrid.resilience.policy import Gate, Policy
from servicegrid.resilience.retry import Retry

__all__ = ["Pipeline"]

P = ParamSpec("P")
T = TypeVar("T")


class Pipeline:
    """Run a callable through ``policies``; the first one listed wraps all the others."""

    __slots__ = ("_depth", "_policies", "name")

    def __init__(self, *policies: Policy, name: str = "") -> None:
        for policy in policies:
            if not (
                callable(getattr(policy, "invoke", None))
                and callable(getattr(policy, "ainvoke", None))
            ):
                raise TypeError(f"{policy!r} is not a policy (it needs invoke and ainvoke)")
        self._policies = _with_gates(policies)
        self._depth = len(policies)
        self.name = name

    @property
    def policies(self) -> tuple[Policy, ...]:
        return self._policies

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through every policy in the calling thread."""
        thunk = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        return self._run(0, thunk)

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through every policy; each retry calls ``fn`` anew."""
        thunk = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        return await self._arun(0, thunk)

    def _run(self, index: int, thunk: Callable[[], T]) -> T:
        if index == self._depth:
            return thunk()
        return self._policies[index].invoke(functools.partial(self._run, index + 1, thunk))

    def _arun(self, index: int, thunk: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        if index == self._depth:
            return thunk()
        return self._policies[index].ainvoke(functools.partial(self._arun, index + 1, thunk))

    def wrap(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn`` (sync or ``async def``) so every call goes through the pipeline."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def get_status(self) -> dict[str, Any]:
        """Each policy's ``get_status()``, keyed by its kind, for those that report one."""
        report: dict[str, Any] = {}
        for policy in self._policies:
            status = getattr(policy, "get_status", None)
            if callable(status):
                key = type(policy).__name__
                report[key if key not in report else f"{key}_{len(report)}"] = status()
        return report

    def __repr__(self) -> str:
        inner = ", ".join(type(p).__name__ for p in self._policies)
        return f"Pipeline({inner}, name={self.name!r})"


def _with_gates(policies: tuple[Policy, ...]) -> tuple[Policy, ...]:
    """Give each Retry the gates (breakers) beneath it, so it never sleeps toward a refusal."""
    wired: list[Policy] = []
    for index, policy in enumerate(policies):
        if isinstance(policy, Retry) and not policy.gates:
            gates = tuple(p for p in policies[index + 1 :] if isinstance(p, Gate))
            if gates:
                policy = dataclasses.replace(policy, gates=gates)
        wired.append(policy)
    return tuple(wired)
