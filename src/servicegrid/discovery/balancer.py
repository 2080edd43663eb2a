"""``BalancedTransport``: one transport over every instance of a discovered service.

.. code-block:: python

    client = EmbeddingClient(service_url="discovery:///embedding-service")
    client = EnhancedHTTPClient("users", "discovery:///user-service")

Each call goes to the next instance in turn (round robin) whose own circuit
breaker admits it. An instance that keeps failing is ejected (its breaker
opens) and probed back with a single trial call once its ``recovery_timeout``
has passed, as Envoy's outlier detection does. A call that fails on one
instance with a retryable error (refused, reset, 5xx; not a timeout, which has
spent the call's time) moves at once to the next instance, each instance tried
at most once per call; an HTTP POST or PATCH moves on only when nothing was
sent (the connection refused). So a dead instance costs its callers little
before its breaker opens, and nothing after.

The instance set is asked of :class:`~servicegrid.discovery.resolver.Discovery`
on every call (a cache hit, almost always), so it follows what the registry
says: instances that appear are used, those that go are dropped (their gRPC
channels closed). With every instance ejected the call fails at once with
:class:`~servicegrid.errors.ServiceUnavailable`, carrying when the first one
will be probed again.

HTTP calls address ``discovery:///<name>/<path>``; the instance's URL (with
its base path) replaces ``discovery:///<name>``. gRPC calls get one transport
per instance from ``connect``.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.base import Answer, Instance, WireProtocol
from servicegrid.discovery.resolver import Discovery
from servicegrid.discovery.urls import (
    DISCOVERY_SCHEME,
    is_discovery_url,
    parse_discovery_url,
    split_discovery_url,
)
from servicegrid.errors import (
    ClientStateError,
    ConnectError,
    DeadlineExceeded,
    ServiceError,
    ServiceUnavailable,
)
from servicegrid.resilience.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from servicegrid.resilience.events import Hook
from servicegrid.transports.base import AsyncTransport, Call, Reply, Transport
from servicegrid.transports.http import StatusCheck

__all__ = [
    "DISCOVERY_SCHEME",
    "INSTANCE_BREAKER",
    "BalancedTransport",
    "balanced_http",
    "is_discovery_url",
    "parse_discovery_url",
]

INSTANCE_BREAKER: Final = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=10.0)
"""Each instance's breaker: 3 failures in a row eject it, a trial call after 10 s."""

Check = Callable[[Call, Reply], None]

_IDEMPOTENT_HTTP: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_log = logging.getLogger("servicegrid.discovery")


class _FailedReply(Exception):
    """A reply the check rejected: its instance's breaker counts it, the caller still gets it."""

    def __init__(self, error: ServiceError, reply: Reply) -> None:
        super().__init__(error.message)
        self.reply = reply
        # what the breaker reads: a 5xx counts against the instance, a 4xx (429 too) does not
        self.retryable = error.retryable and not 400 <= error.http_status < 500


@dataclass(slots=True)
class _Member:
    instance: Instance
    breaker: CircuitBreaker
    transport: Any
    calls: int = 0
    failures: int = 0


class BalancedTransport:
    """A transport (sync and async) over the instances of ``service``; see the module docstring.

    ``inner`` sends every HTTP call (it pools per origin); ``connect`` makes one
    transport per gRPC instance. ``check`` raises for a reply that is a failure
    (an HTTP 503): the instance's breaker counts it, and the reply still goes
    back to the caller, whose own check and retry decide what to do with it.
    """

    def __init__(
        self,
        service: str,
        *,
        protocol: WireProtocol,
        discovery: Discovery | None = None,
        inner: Transport | AsyncTransport | None = None,
        connect: Callable[[Instance], AsyncTransport] | None = None,
        check: Check | None = None,
        breaker: CircuitBreakerConfig = INSTANCE_BREAKER,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
    ) -> None:
        if (inner is None) == (connect is None):
            raise TypeError("give inner= (one transport for all) or connect= (one per instance)")
        self.service = service
        self.protocol = protocol
        self._discovery = discovery
        self._inner = inner
        self._connect = connect
        self.check = check
        self._breaker = breaker
        self._clock = clock
        self._hooks = tuple(hooks)
        self._members: dict[Instance, _Member] = {}
        self._order: list[_Member] = []
        self._answer: Answer | None = None
        self._turn = itertools.count()
        self._closed = False
        self._retired: list[Any] = []

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            from servicegrid.discovery.functions import default_discovery

            self._discovery = default_discovery()
        return self._discovery

    # ---- the instance set --------------------------------------------------------------

    def _adopt(self, answer: Answer) -> None:
        """Make the members match ``answer``: keep the breakers of instances that stay."""
        if answer is self._answer:
            return
        members: dict[Instance, _Member] = {}
        for instance in answer.instances:
            member = self._members.get(instance)
            if member is None:
                member = _Member(
                    instance, self._new_breaker(instance), self._transport_for(instance)
                )
            members[instance] = member
        for instance, gone in self._members.items():
            if instance not in members and gone.transport is not self._inner:
                self._retired.append(gone.transport)
        self._members, self._order, self._answer = members, list(members.values()), answer

    def _new_breaker(self, instance: Instance) -> CircuitBreaker:
        return CircuitBreaker(
            config=self._breaker,
            name=f"{self.service}@{instance.address}",
            clock=self._clock,
            hooks=self._hooks,
        )

    def _transport_for(self, instance: Instance) -> Any:
        return self._inner if self._connect is None else self._connect(instance)

    def _candidates(self) -> list[_Member]:
        """The members in this call's order: round robin from the next turn."""
        order = self._order
        if not order:
            return []
        start = next(self._turn) % len(order)
        return order[start:] + order[:start]

    def _retarget(self, call: Call, member: _Member) -> Call:
        if self.protocol == "grpc":
            return call
        _, rest = split_discovery_url(call.url)
        url = member.instance.url + rest
        return Call(
            call.method, url, call.headers, call.body, call.timeout, call.options, call.name
        )

    def _all_ejected(self) -> ServiceUnavailable:
        waits = [wait for m in self._order if (wait := m.breaker.retry_after()) is not None]
        return ServiceUnavailable(
            f"{self.service}: every instance ({len(self._order)}) is ejected by its breaker",
            service=self.service,
            retry_after=min(waits) if waits else None,
        )

    def _classify(self, member: _Member, call: Call, reply: Reply) -> None:
        if self.check is None:
            return
        try:
            self.check(call, reply)
        except ServiceError as error:
            member.failures += 1
            raise _FailedReply(error, reply) from error

    def _fails_over(self, error: ServiceError, call: Call) -> bool:
        """Whether ``call`` may go on to the next instance after ``error``: a retryable error
        that has not spent the call's time, and, for an HTTP call that is not idempotent
        (POST, PATCH), only one proving that nothing was sent (the connection refused)."""
        if not error.retryable or isinstance(error, DeadlineExceeded):
            return False
        if self.protocol == "http" and call.method.upper() not in _IDEMPOTENT_HTTP:
            return isinstance(error, ConnectError)
        return True

    # ---- async -------------------------------------------------------------------------

    async def asend(self, call: Call) -> Reply:
        """Send ``call`` to one instance, moving to the next on a retryable failure."""
        if self._closed:
            raise ClientStateError(f"{self.service}: the transport is closed")
        answer = self.discovery.cached(self.service, self.protocol)
        if answer is None:
            answer = await self.discovery.resolve(self.service, self.protocol)
        self._adopt(answer)
        if self._retired:
            await self._close_retired()
        last: ServiceError | None = None
        for member in self._candidates():
            if not member.breaker.admits_after(0.0):
                continue
            try:
                reply = await member.breaker.ainvoke(
                    functools.partial(self._asend_to, member, call)
                )
            except _FailedReply as failed:
                return failed.reply
            except ServiceUnavailable as error:
                if error.service == member.breaker.name:  # ejected meanwhile: next one
                    continue
                raise
            except ServiceError as error:
                if not self._fails_over(error, call):
                    raise
                last = error
                _log.info(
                    "%s: %s failed (%s); trying the next instance",
                    self.service,
                    member.instance.address,
                    type(error).__name__,
                )
                continue
            return reply
        raise last if last is not None else self._all_ejected()

    async def _asend_to(self, member: _Member, call: Call) -> Reply:
        member.calls += 1
        try:
            reply: Reply = await member.transport.asend(self._retarget(call, member))
        except ServiceError:
            member.failures += 1
            raise
        self._classify(member, call, reply)
        return reply

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for transport in retired:
            try:
                await transport.aclose()
            except Exception:
                _log.debug("closing a retired instance's transport failed", exc_info=True)

    async def aclose(self) -> None:
        """Close every instance's transport (and the shared one); idempotent."""
        self._closed = True
        for member in self._order:
            if member.transport is not self._inner:
                self._retired.append(member.transport)
        await self._close_retired()
        aclose = getattr(self._inner, "aclose", None)
        if callable(aclose):
            await aclose()

    # ---- sync --------------------------------------------------------------------------

    def send(self, call: Call) -> Reply:
        """Send ``call`` from this thread to one instance, as :meth:`asend` does."""
        if self._closed:
            raise ClientStateError(f"{self.service}: the transport is closed")
        from servicegrid.discovery.functions import run_blocking

        answer = self.discovery.cached(self.service, self.protocol)
        if answer is None:
            answer = run_blocking(self.discovery.resolve(self.service, self.protocol))
        self._adopt(answer)
        last: ServiceError | None = None
        for member in self._candidates():
            if not member.breaker.admits_after(0.0):
                continue
            try:
                return member.breaker.invoke(functools.partial(self._send_to, member, call))
            except _FailedReply as failed:
                return failed.reply
            except ServiceUnavailable as error:
                if error.service == member.breaker.name:
                    continue
                raise
            except ServiceError as error:
                if not self._fails_over(error, call):
                    raise
                last = error
        raise last if last is not None else self._all_ejected()

    def _send_to(self, member: _Member, call: Call) -> Reply:
        member.calls += 1
        try:
            reply: Reply = member.transport.send(self._retarget(call, member))
        except ServiceError:
            member.failures += 1
            raise
        self._classify(member, call, reply)
        return reply

    def close(self) -> None:
        self._closed = True
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    # ---- status ------------------------------------------------------------------------

    def instances(self) -> list[dict[str, Any]]:
        """Each known instance: address, breaker state, calls and failures sent to it."""
        return [
            {
                "address": member.instance.address,
                "state": member.breaker.state.value,
                "ejected": member.breaker.state is not CircuitState.CLOSED,
                "calls": member.calls,
                "failures": member.failures,
            }
            for member in self._order
        ]

    def __repr__(self) -> str:
        return f"BalancedTransport({self.service!r}, {self.protocol}, instances={len(self._order)})"


T = TypeVar("T")


def balanced_http(
    base_url: str,
    inner: T,
    *,
    service: str,
    discovery: Discovery | None = None,
    clock: Clock = SYSTEM_CLOCK,
    hooks: Sequence[Hook] = (),
) -> T | BalancedTransport:
    """``inner`` as it is for a plain URL; for ``discovery:///<name>``, a
    :class:`BalancedTransport` over it whose instances' breakers count 5xx answers."""
    if not is_discovery_url(base_url):
        return inner
    return BalancedTransport(
        parse_discovery_url(base_url)[0],
        protocol="http",
        discovery=discovery,
        inner=inner,  # type: ignore[arg-type]
        check=StatusCheck(client_errors=False, service=service),
        clock=clock,
        hooks=hooks,
    )
