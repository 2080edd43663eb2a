"""The transport seam without a socket: MockTransport, ResilientTransport, build_pipeline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from servicegrid.errors import (
    ClientStateError,
    ConnectError,
    DeadlineExceeded,
    InternalError,
    ServiceUnavailable,
)
from servicegrid.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    ConstantBackoff,
    Pipeline,
    Retry,
    RetrySpec,
    build_pipeline,
    deadline_scope,
)
from servicegrid.resilience.ratelimit import RateLimitConfig, TokenBucket
from servicegrid.testing import FakeClock
from servicegrid.transports import Call, MockTransport, Reply, ResilientTransport
from servicegrid.transports.http import PhaseTimeouts, PoolLimits, StatusCheck
from servicegrid.transports.resilient import attempt_timeout

GET = Call("GET", "http://svc/items", timeout=5.0, name="GET /items")


def pipeline(clock: FakeClock, *, attempts: int = 3, threshold: int = 5) -> Pipeline:
    return build_pipeline(
        name="svc",
        retry=RetrySpec(attempts=attempts, backoff=ConstantBackoff(1.0)),
        breaker=CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=30.0),
        clock=clock,
    )


# ---- build_pipeline ---------------------------------------------------------------------


def test_build_pipeline_runs_the_policies_it_was_given() -> None:
    retry = Retry(attempts=2)
    breaker = CircuitBreaker(name="svc")
    limiter = TokenBucket(10.0, 10)
    built = build_pipeline(name="svc", retry=retry, breaker=breaker, limiter=limiter)
    assert built.policies == (retry, breaker, limiter)  # the objects, in order, no copies
    assert built.retry is retry
    assert built.breaker is breaker
    assert built.limiter is limiter
    assert built.require(Retry) is retry
    with pytest.raises(LookupError, match="no Retry"):
        build_pipeline(breaker=breaker).require(Retry)


def test_build_pipeline_builds_specs_once_with_the_name_and_clock() -> None:
    clock = FakeClock()
    built = build_pipeline(
        name="svc",
        timeout=10.0,
        retry=RetrySpec(attempts=4),
        breaker=CircuitBreakerConfig(failure_threshold=2),
        limiter=RateLimitConfig(requests_per_second=5.0),
        clock=clock,
    )
    kinds = [type(policy).__name__ for policy in built.policies]
    assert kinds == ["Timeout", "Retry", "CircuitBreaker", "TokenBucket"]
    retry, breaker = built.retry, built.breaker
    assert retry is not None
    assert (retry.attempts, retry.clock, retry.name) == (4, clock, "svc")
    assert breaker is not None
    assert breaker.failure_threshold == 2


def test_a_pipeline_keeps_its_retry_as_given_and_still_gates_it() -> None:
    clock = FakeClock()
    retry = Retry(attempts=5, backoff=ConstantBackoff(1.0), clock=clock)
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=clock)
    built = Pipeline(retry, breaker)
    assert built.policies[0] is retry
    assert retry.gates == ()

    def down() -> None:
        raise ConnectError("refused")

    with pytest.raises(ConnectError):
        built.call(down)
    # two failures opened the breaker; the retry did not sleep toward its refusal
    assert clock.sleeps == [1.0]


# ---- ResilientTransport ------------------------------------------------------------------


def test_mock_transport_answers_and_records() -> None:
    mock = MockTransport(lambda call: Reply(200, [("content-type", "text/plain")], b"hi"))
    reply = mock.send(GET)
    assert (reply.status, reply.text, reply.header("Content-Type")) == (200, "hi", "text/plain")
    assert mock.calls == [GET]


async def test_an_async_handler_serves_asend_only() -> None:
    async def handler(call: Call) -> Reply:
        return Reply(204)

    mock = MockTransport(handler)
    assert (await mock.asend(GET)).status == 204
    with pytest.raises(TypeError, match="asend"):
        mock.send(GET)


def test_retry_and_breaker_see_failed_replies() -> None:
    clock = FakeClock()
    answers = iter([Reply(503), Reply(503), Reply(200, body=b"ok")])
    mock = MockTransport(lambda call: next(answers))
    transport = ResilientTransport(
        mock, pipeline(clock), check=StatusCheck(client_errors=True), clock=clock
    )
    assert transport.send(GET).content == b"ok"
    assert len(mock.calls) == 3
    assert clock.sleeps == [1.0, 1.0]


def test_a_reply_check_of_its_own_replaces_the_default() -> None:
    clock = FakeClock()
    mock = MockTransport(lambda call: Reply(500))
    transport = ResilientTransport(mock, pipeline(clock), check=StatusCheck(client_errors=True))
    with pytest.raises(InternalError):
        transport.send(GET)
    assert transport.send(GET, check=lambda call, reply: None).status == 500


def test_the_breaker_opens_and_then_nothing_is_sent() -> None:
    clock = FakeClock()

    def refused(call: Call) -> Reply:
        raise ConnectError("refused")

    mock = MockTransport(refused)
    transport = ResilientTransport(mock, pipeline(clock, attempts=1, threshold=2), clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectError):
            transport.send(GET)
    with pytest.raises(ServiceUnavailable):
        transport.send(GET)
    assert len(mock.calls) == 2


async def test_each_attempt_is_capped_at_the_deadline_once() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def handler(call: Call) -> Reply:
        seen.append(call.timeout)
        return Reply(200)

    transport = ResilientTransport(MockTransport(handler), pipeline(clock), clock=clock)
    await transport.asend(GET)  # no deadline: the call's own 5 s
    with deadline_scope(clock.now() + 2.0):
        await transport.asend(GET)  # 2 s left: capped
    with deadline_scope(clock.now() + 60.0):
        await transport.asend(GET)  # plenty left: the call's own 5 s
    assert seen == [5.0, 2.0, 5.0]


async def test_a_call_past_its_deadline_is_refused_unsent_and_uncounted() -> None:
    clock = FakeClock()
    mock = MockTransport(lambda call: Reply(200))
    built = pipeline(clock, threshold=1)
    transport = ResilientTransport(mock, built, clock=clock, name="svc")
    with deadline_scope(clock.now() - 1.0), pytest.raises(DeadlineExceeded) as caught:
        await transport.asend(GET)
    assert caught.value.service == "svc"
    assert mock.calls == []
    assert built.breaker is not None
    assert built.breaker.failure_count == 0


def test_attempt_timeout() -> None:
    clock = FakeClock()
    assert attempt_timeout(None, clock) is None
    assert attempt_timeout(3.0, clock) == 3.0
    with deadline_scope(clock.now() + 1.5):
        assert attempt_timeout(None, clock) == 1.5
        assert attempt_timeout(3.0, clock) == 1.5
    with deadline_scope(clock.now()), pytest.raises(DeadlineExceeded):
        attempt_timeout(3.0, clock)


def test_a_sync_send_over_an_async_only_transport_is_a_typed_error() -> None:
    class AsyncOnly:
        async def asend(self, call: Call) -> Reply:
            return Reply()

        async def aclose(self) -> None:
            return None

    transport = ResilientTransport(AsyncOnly(), Pipeline())
    with pytest.raises(ClientStateError, match="event loops"):
        transport.send(GET)


def test_reply_helpers() -> None:
    reply = Reply(200, [(b"Retry-After", b"3")], b'{"a": 1}')
    assert reply.header("retry-after") == "3"
    assert reply.header("missing") is None
    assert reply.json() == {"a": 1}
    assert Reply(503, {"Retry-After": "2"}).header("Retry-After") == "2"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: PhaseTimeouts(read=0), "PhaseTimeouts.read"),
        (lambda: PhaseTimeouts(connect=float("nan")), "PhaseTimeouts.connect"),
        (lambda: PoolLimits(max_connections=0), "PoolLimits.max_connections"),
        (lambda: PoolLimits(max_keepalive_connections=-1), "PoolLimits.max_keepalive_connections"),
        (lambda: PoolLimits(keepalive_expiry=-1.0), "PoolLimits.keepalive_expiry"),
    ],
)
def test_transport_limits_name_the_bad_field(make: Callable[[], object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


def test_phase_timeouts_cap_every_phase() -> None:
    assert PhaseTimeouts().capped(None) == PhaseTimeouts()
    assert PhaseTimeouts(read=30.0, connect=1.0).capped(2.0) == PhaseTimeouts(1.0, 2.0, 2.0, 2.0)
