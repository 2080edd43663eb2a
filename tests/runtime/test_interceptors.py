"""Interceptor behaviors on their own, driven with a stand-in for the servicer context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from servicegrid.errors import RemoteError, ServiceError, ValidationError
from servicegrid.resilience.deadline import current_deadline, remaining
from servicegrid.runtime import DeadlineInterceptor, ErrorMappingInterceptor, current_request_id
from servicegrid.runtime.interceptors import (
    InterceptorChain,
    chained,
    split_method,
    status_code_for,
)
from servicegrid.testing import FakeClock

METHOD = "/servicegrid.v1.EmbeddingService/GenerateEmbeddings"


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, trailers: Sequence[Any]) -> None:
        super().__init__(code, details)
        self.code, self.details, self.trailers = code, details, tuple(trailers)


class StandInContext:
    """The few ``grpc.aio.ServicerContext`` methods the interceptors use (no network)."""

    def __init__(self, time_remaining: float | None) -> None:
        self._time_remaining = time_remaining

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def trailing_metadata(self) -> Sequence[Any]:
        return ()

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> None:
        raise Aborted(code, details, trailing_metadata)


def stand_in(time_remaining: float | None) -> Any:
    return StandInContext(time_remaining)


def test_split_method() -> None:
    assert split_method(METHOD) == ("servicegrid.v1.EmbeddingService", "GenerateEmbeddings")
    assert split_method("odd") == ("unknown", "odd")


def test_status_code_for_reads_the_error_table() -> None:
    class Strange(RemoteError):
        grpc_code = "NOT_A_CODE"

    assert status_code_for(ValidationError()) is grpc.StatusCode.INVALID_ARGUMENT
    assert status_code_for(ServiceError()) is grpc.StatusCode.UNKNOWN
    assert status_code_for(Strange()) is grpc.StatusCode.UNKNOWN


@pytest.mark.parametrize("left", [0.0, -0.5])
async def test_deadline_already_passed_is_refused(left: float) -> None:
    reached = False

    async def behavior(request: Any, context: Any) -> str:
        nonlocal reached
        reached = True
        return "answer"

    with pytest.raises(Aborted) as caught:
        await DeadlineInterceptor().handle(METHOD, None, stand_in(left), behavior)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert not reached


async def test_remaining_time_is_published_for_the_call_only() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    async def behavior(request: Any, context: Any) -> str:
        seen.extend([current_deadline(), remaining(clock)])
        return "answer"

    interceptor = DeadlineInterceptor(clock=clock)
    assert await interceptor.handle(METHOD, None, stand_in(2.5), behavior) == "answer"
    assert seen == [clock.now() + 2.5, 2.5]
    assert current_deadline() is None

    seen.clear()
    await interceptor.handle(METHOD, None, stand_in(None), behavior)
    assert seen == [None, None]


def test_min_remaining_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="min_remaining"):
        DeadlineInterceptor(min_remaining=-1.0)


async def test_service_error_without_retry_after_sends_no_trailer() -> None:
    async def behavior(request: Any, context: Any) -> str:
        raise ValidationError("bad", retry_after=None)

    with pytest.raises(Aborted) as caught:
        await ErrorMappingInterceptor().handle(METHOD, None, stand_in(None), behavior)
    assert (caught.value.code, caught.value.details) == (grpc.StatusCode.INVALID_ARGUMENT, "bad")
    assert caught.value.trailers == ()


async def test_internal_error_without_request_context_still_hides_details() -> None:
    async def behavior(request: Any, context: Any) -> str:
        raise KeyError("secret")

    assert current_request_id() is None
    with pytest.raises(Aborted) as caught:
        await ErrorMappingInterceptor().handle(METHOD, None, stand_in(None), behavior)
    assert (caught.value.code, caught.value.details) == (grpc.StatusCode.INTERNAL, "internal error")


def test_chained_merges_adjacent_unary_interceptors_in_order() -> None:
    class Passing(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return await continuation(details)

    first, second, third = DeadlineInterceptor(), ErrorMappingInterceptor(), DeadlineInterceptor()
    other = Passing()
    merged = chained([first, second, other, third])
    assert [type(m) for m in merged] == [InterceptorChain, Passing, InterceptorChain]
    assert merged[0].layers == (first, second)  # type: ignore[attr-defined]
    assert merged[2].layers == (third,)  # type: ignore[attr-defined]
    assert chained([]) == []


async def test_a_chain_runs_its_layers_outermost_first_and_reuses_the_wrapped_handler() -> None:
    seen: list[str] = []

    class Named(DeadlineInterceptor):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def handle(self, method: str, request: Any, context: Any, behavior: Any) -> Any:
            seen.append(f"{self.name}>")
            result = await behavior(request, context)
            seen.append(f"<{self.name}")
            return result

    def servicer(request: str, context: Any) -> str:  # a sync behavior works too
        seen.append("servicer")
        return request.upper()

    handler = grpc.unary_unary_rpc_method_handler(servicer)

    async def continuation(details: Any) -> Any:
        return handler

    chain = InterceptorChain([Named("outer"), Named("inner")])
    details = Details(METHOD)
    wrapped = await chain.intercept_service(continuation, details)
    assert wrapped is not None
    assert wrapped.unary_unary is not None
    assert await chain.intercept_service(continuation, details) is wrapped
    assert await wrapped.unary_unary("hi", stand_in(None)) == "HI"
    assert seen == ["outer>", "inner>", "servicer", "<inner", "<outer"]


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()
