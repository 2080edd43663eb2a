"""Policies composed into one call path, outermost first, and the one place clients build theirs.

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

    pipeline = build_pipeline(name="embedding", retry=RetrySpec(attempts=3),
                              breaker=CircuitBreakerConfig(failure_threshold=5))
    pipeline.retry, pipeline.breaker             # the very policies it runs

The same pipeline object serves sync and async callers; its policies keep
one set of state for both. A pipeline runs exactly the policy objects it was
given: a :class:`Retry` learns about the breakers beneath it with each call,
so it never sleeps toward a certain refusal, and is never copied.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.resilience.breaker import CircuitBreaker, CircuitBreakerConfig
from servicegrid.resilience.bulkhead import Bulkhead
from servicegrid.resilience.events import Hook
from servicegrid.resilience.policy import Gate, Policy
from servicegrid.resilience.ratelimit import RateLimitConfig, SlidingWindow, TokenBucket
from servicegrid.resilience.retry import Retry
from servicegrid.resilience.retry_spec import RetrySpec
from servicegrid.resilience.timeout import Timeout

__all__ = ["Pipeline", "build_pipeline"]

P = ParamSpec("P")
T = TypeVar("T")

Limiter = TokenBucket | SlidingWindow


class Pipeline:
    """Run a callable through ``policies``; the first one listed wraps all the others."""

    __slots__ = ("_ainvokers_inside_out", "_invokers_inside_out", "_policies", "name")

    def __init__(self, *policies: Policy, name: str = "") -> None:
        for policy in policies:
            if not (
                callable(getattr(policy, "invoke", None))
                and callable(getattr(policy, "ainvoke", None))
            ):
                raise TypeError(f"{policy!r} is not a policy (it needs invoke and ainvoke)")
        self._policies = tuple(policies)
        inside_out = range(len(policies) - 1, -1, -1)
        self._invokers_inside_out = tuple(
            _invoker(self._policies, i, asynchronous=False) for i in inside_out
        )
        self._ainvokers_inside_out = tuple(
            _invoker(self._policies, i, asynchronous=True) for i in inside_out
        )
        self.name = name

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The policies, outermost first: the objects given, not copies."""
        return self._policies

    def find(self, kind: type[T]) -> T | None:
        """The outermost policy of type ``kind``, or None."""
        return next((p for p in self._policies if isinstance(p, kind)), None)

    def require(self, kind: type[T]) -> T:
        """The outermost policy of type ``kind``; LookupError if the pipeline has none."""
        found = self.find(kind)
        if found is None:
            raise LookupError(f"{self!r} has no {kind.__name__}")
        return found

    @property
    def retry(self) -> Retry | None:
        return self.find(Retry)

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self.find(CircuitBreaker)

    @property
    def limiter(self) -> Limiter | None:
        return next((p for p in self._policies if isinstance(p, TokenBucket | SlidingWindow)), None)

    # Both call paths wrap the callable in each policy from the innermost out, then call the
    # outermost: one small partial per policy and no frame of the pipeline's own in between,
    # because the success path runs on every call a client makes.

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through every policy in the calling thread."""
        thunk: Callable[[], Any] = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        for invoke in self._invokers_inside_out:
            thunk = functools.partial(invoke, thunk)
        return thunk()  # type: ignore[no-any-return]

    def acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]:
        """Await ``fn(*args, **kwargs)`` through every policy; each retry calls ``fn`` anew.

        Returns the outermost policy's awaitable: ``await pipeline.acall(fn)``.
        """
        thunk: Callable[[], Any] = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        for ainvoke in self._ainvokers_inside_out:
            thunk = functools.partial(ainvoke, thunk)
        return thunk()  # type: ignore[no-any-return]

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


def _invoker(
    policies: tuple[Policy, ...], index: int, *, asynchronous: bool
) -> Callable[[Any], Any]:
    """How to enter policy ``index``: a Retry without gates of its own gets those beneath it."""
    policy = policies[index]
    if isinstance(policy, Retry) and not policy.gates:
        gates = tuple(p for p in policies[index + 1 :] if isinstance(p, Gate))
        if gates:
            retry_method = policy.ainvoke if asynchronous else policy.invoke
            return functools.partial(retry_method, gates=gates)
    return policy.ainvoke if asynchronous else policy.invoke


def build_pipeline(
    *,
    name: str = "",
    timeout: Timeout | float | None = None,
    retry: Retry | RetrySpec | None = None,
    breaker: CircuitBreaker | CircuitBreakerConfig | None = None,
    bulkhead: Bulkhead | None = None,
    limiter: Limiter | RateLimitConfig | None = None,
    extra: Sequence[Policy] = (),
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    hooks: Sequence[Hook] = (),
) -> Pipeline:
    """The pipeline every client runs: timeout → retry → breaker → bulkhead → limiter → ``extra``.

    Each part may be given ready-made, which the pipeline then runs as it is, or
    as a spec (a number of seconds, :class:`RetrySpec`, :class:`CircuitBreakerConfig`,
    :class:`RateLimitConfig`), built here once with ``name``, ``clock``, ``rng``
    and ``hooks``. ``extra`` policies run innermost, around each attempt (fault
    injection, for instance). Parts left as None are left out.
    """
    hooks = tuple(hooks)
    if isinstance(timeout, int | float):
        timeout = Timeout(float(timeout), name=name, clock=clock)
    if isinstance(retry, RetrySpec):
        retry = retry.build(name=name, clock=clock, rng=rng, hooks=hooks)
    if isinstance(breaker, CircuitBreakerConfig):
        breaker = CircuitBreaker(name=name, config=breaker, clock=clock, hooks=hooks)
    if isinstance(limiter, RateLimitConfig):
        limiter = limiter.build(name=name, clock=clock, hooks=hooks)
    parts = (timeout, retry, breaker, bulkhead, limiter)
    return Pipeline(*(part for part in parts if part is not None), *extra, name=name)
