"""The runtime on a real grpc.aio server on loopback: health, reflection, errors, metadata."""

from __future__ import annotations

import asyncio
import logging
import re

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped]
    reflection_pb2,
    reflection_pb2_grpc,
)
from prometheus_client import CollectorRegistry

from servicegrid.proto import common_pb2
from servicegrid.runtime import (
    DeadlineInterceptor,
    ErrorMappingInterceptor,
    MetricsInterceptor,
    RequestContextInterceptor,
    create_server,
)
from servicegrid.runtime.server import HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME
from tests.runtime.conftest import EMBEDDING, VECTOR, Served, build, embed_request, registration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_status(served: Served, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(served.channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def rpc_error(awaitable: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value


# -- health and reflection -----------------------------------------------------


@pytest.mark.parametrize("service", [EMBEDDING, ""])
async def test_health_is_not_serving_until_marked(served: Served, service: str) -> None:
    assert await health_status(served, service) == NOT_SERVING
    await served.running.health.set_all(True)
    assert await health_status(served, service) == SERVING
    assert served.running.health.is_serving(service)


async def test_health_per_service_and_unknown_name(served: Served) -> None:
    await served.running.health.set(EMBEDDING, True)
    assert await health_status(served, EMBEDDING) == SERVING
    assert await health_status(served, "") == NOT_SERVING
    error = await rpc_error(health_status(served, "servicegrid.v1.NoSuchService"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_every_service(served: Served) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=EMBEDDING),
    ]
    call = stub.ServerReflectionInfo(iter(requests), timeout=5)
    listed = await call.read()
    described = await call.read()
    names = {service.name for service in listed.list_services_response.service}
    assert names == {EMBEDDING, HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME}
    assert described.file_descriptor_response.file_descriptor_proto  # `grpcurl describe` works


async def test_the_servicer_answers(served: Served) -> None:
    reply = await served.stub.GenerateEmbeddings(embed_request("a", "b"), timeout=5)
    assert [list(e.values) for e in reply.embeddings] == [VECTOR, VECTOR]


# -- error mapping -------------------------------------------------------------


async def test_validation_error_is_invalid_argument(served: Served) -> None:
    error = await rpc_error(served.stub.GenerateEmbeddings(embed_request(), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "texts: must not be empty"


async def test_retry_after_travels_as_a_trailer(served: Served) -> None:
    error = await rpc_error(served.stub.GenerateEmbeddings(embed_request("busy"), timeout=5))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "queue full"
    assert dict(error.trailing_metadata() or ())["retry-after"] == "2.5"


async def test_unexpected_exception_is_internal_and_does_not_leak(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="servicegrid.runtime")
    call = served.stub.GenerateEmbeddings(embed_request("crash"), timeout=5)
    error = await rpc_error(call)
    request_id = dict(await call.trailing_metadata())["x-request-id"]
    assert error.code() == grpc.StatusCode.INTERNAL
    assert request_id in str(error.details())
    assert "boom" not in str(error.details())
    assert "RuntimeError" not in str(error.details())
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert request_id in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert "boom" in str(logged[0].exc_info[1])


async def test_servicer_abort_passes_through(served: Served) -> None:
    error = await rpc_error(served.stub.GenerateEmbeddings(embed_request("abort"), timeout=5))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such model"


async def test_method_left_unimplemented_is_unimplemented(served: Served) -> None:
    error = await rpc_error(served.stub.ListModels(common_pb2.ListModelsRequest(), timeout=5))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_service_keeps_serving_after_errors(served: Served) -> None:
    for text in ("crash", "busy", "abort"):
        await rpc_error(served.stub.GenerateEmbeddings(embed_request(text), timeout=5))
    await rpc_error(served.stub.GenerateEmbeddings(embed_request(), timeout=5))
    reply = await served.stub.GenerateEmbeddings(embed_request("fine"), timeout=5)
    assert len(reply.embeddings) == 1


# -- request metadata ----------------------------------------------------------


async def test_request_id_is_generated_and_echoed(served: Served) -> None:
    call = served.stub.GetHealth(common_pb2.HealthRequest(), timeout=5)
    reply = await call
    echoed = dict(await call.trailing_metadata())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert reply.details["request_id"] == echoed


async def test_given_request_id_is_kept(served: Served) -> None:
    metadata = (("x-request-id", "req-42"),)
    call = served.stub.GetHealth(common_pb2.HealthRequest(), metadata=metadata, timeout=5)
    reply = await call
    assert dict(await call.trailing_metadata())["x-request-id"] == "req-42"
    assert reply.details["request_id"] == "req-42"


async def test_unsafe_request_id_is_replaced(served: Served) -> None:
    metadata = (("x-request-id", "x" * 500),)
    call = served.stub.GetHealth(common_pb2.HealthRequest(), metadata=metadata, timeout=5)
    reply = await call
    assert re.fullmatch(r"[0-9a-f]{32}", reply.details["request_id"])


async def test_request_id_is_echoed_on_errors_too(served: Served) -> None:
    metadata = (("x-request-id", "req-err"),)
    call = served.stub.GenerateEmbeddings(embed_request(), metadata=metadata, timeout=5)
    error = await rpc_error(call)
    assert dict(error.trailing_metadata() or ())["x-request-id"] == "req-err"


async def test_request_id_travels_with_retry_after(served: Served) -> None:
    metadata = (("x-request-id", "req-busy"),)
    call = served.stub.GenerateEmbeddings(embed_request("busy"), metadata=metadata, timeout=5)
    trailers = dict((await rpc_error(call)).trailing_metadata() or ())
    assert trailers == {"x-request-id": "req-busy", "retry-after": "2.5"}


async def test_tenant_and_traceparent_reach_the_servicer(served: Served) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    metadata = (("x-tenant-id", "tenant-7"), ("traceparent", traceparent))
    reply = await served.stub.GetHealth(common_pb2.HealthRequest(), metadata=metadata, timeout=5)
    assert reply.details["tenant"] == "tenant-7"
    assert reply.details["traceparent"] == traceparent


async def test_missing_or_bad_traceparent_gets_a_new_one(served: Served) -> None:
    plain = await served.stub.GetHealth(common_pb2.HealthRequest(), timeout=5)
    bad = await served.stub.GetHealth(
        common_pb2.HealthRequest(), metadata=(("traceparent", "garbage"),), timeout=5
    )
    for reply in (plain, bad):
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", reply.details["traceparent"])
        assert reply.details["tenant"] == ""
    assert plain.details["traceparent"] != bad.details["traceparent"]


# -- deadlines and size caps -----------------------------------------------------


async def test_servicer_sees_the_callers_deadline(served: Served) -> None:
    reply = await served.stub.GetHealth(common_pb2.HealthRequest(), timeout=5)
    assert 0 < float(reply.details["remaining"]) < 6  # gRPC rounds the timeout up on the wire
    unbounded = await served.stub.GetHealth(common_pb2.HealthRequest())
    assert unbounded.details["remaining"] == ""


async def test_call_without_enough_time_never_reaches_the_servicer() -> None:
    # A caller's timeout=0 arrives with 0 or a fraction of a millisecond left (gRPC rounds the
    # timeout up on the wire), so "already expired" is made certain here with min_remaining.
    registry = CollectorRegistry()
    stack = [
        RequestContextInterceptor(),
        MetricsInterceptor(registry),
        ErrorMappingInterceptor(),
        DeadlineInterceptor(min_remaining=60.0),
    ]
    s = await build(interceptors=stack)
    await s.running.server.start()
    try:
        error = await rpc_error(s.stub.GenerateEmbeddings(embed_request("probe"), timeout=5))
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "left when the call arrived" in str(error.details())
        assert s.servicer.calls == []
        labels = {"service": EMBEDDING, "method": "GenerateEmbeddings"}
        code = "DEADLINE_EXCEEDED"
        assert sample(registry, "servicegrid_grpc_requests_total", code=code, **labels) == 1
        # without a deadline there is nothing to refuse
        reply = await s.stub.GenerateEmbeddings(embed_request("probe"))
        assert len(reply.embeddings) == 1
    finally:
        await s.channel.close()
        await s.running.server.stop(None)


async def test_message_above_the_cap_is_resource_exhausted() -> None:
    s = await build(max_message_bytes=1024)
    await s.running.server.start()
    try:
        small = await s.stub.GenerateEmbeddings(embed_request("x" * 100), timeout=5)
        assert len(small.embeddings) == 1
        error = await rpc_error(s.stub.GenerateEmbeddings(embed_request("x" * 4096), timeout=5))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await s.channel.close()
        await s.running.server.stop(None)


async def test_create_server_refuses_no_or_duplicate_services() -> None:
    with pytest.raises(ValueError, match="at least one"):
        await create_server("127.0.0.1:0", services=[])
    s = await build()
    twice = [registration(s.servicer), registration(s.servicer)]
    with pytest.raises(ValueError, match="twice"):
        await create_server("127.0.0.1:0", services=twice, registry=CollectorRegistry())
    await s.channel.close()


async def test_a_port_in_use_is_an_error(served: Served) -> None:
    with pytest.raises(RuntimeError, match="could not bind"):
        await create_server(
            f"127.0.0.1:{served.running.port}",
            services=[registration(served.servicer)],
            registry=CollectorRegistry(),
        )


# -- metrics and logs ------------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_calls_are_counted_timed_and_tracked_in_flight(served: Served) -> None:
    labels = {"service": EMBEDDING, "method": "GenerateEmbeddings"}
    await served.stub.GenerateEmbeddings(embed_request("a"), timeout=5)
    await served.stub.GenerateEmbeddings(embed_request("b"), timeout=5)
    await rpc_error(served.stub.GenerateEmbeddings(embed_request(), timeout=5))
    await rpc_error(served.stub.GenerateEmbeddings(embed_request("crash"), timeout=5))

    slow = asyncio.ensure_future(served.stub.GenerateEmbeddings(embed_request("slow"), timeout=5))
    await asyncio.wait_for(served.servicer.slow_started.wait(), timeout=5)
    assert sample(served.registry, "servicegrid_grpc_in_flight", **labels) == 1
    await slow

    reg = served.registry
    assert sample(reg, "servicegrid_grpc_requests_total", code="OK", **labels) == 3
    assert sample(reg, "servicegrid_grpc_requests_total", code="INVALID_ARGUMENT", **labels) == 1
    assert sample(reg, "servicegrid_grpc_requests_total", code="INTERNAL", **labels) == 1
    assert sample(reg, "servicegrid_grpc_request_seconds_count", **labels) == 5
    assert sample(reg, "servicegrid_grpc_request_seconds_sum", **labels) > 0
    assert sample(reg, "servicegrid_grpc_in_flight", **labels) == 0


def test_metrics_on_one_registry_are_shared() -> None:
    registry = CollectorRegistry()
    first, second = MetricsInterceptor(registry), MetricsInterceptor(registry)
    assert first.metrics is second.metrics
    assert MetricsInterceptor(CollectorRegistry()).metrics is not first.metrics


async def test_one_log_line_per_call(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="servicegrid.runtime")
    metadata = (("x-request-id", "req-log"),)
    await served.stub.GenerateEmbeddings(embed_request("a"), metadata=metadata, timeout=5)
    await rpc_error(served.stub.GenerateEmbeddings(embed_request(), metadata=metadata, timeout=5))
    # the client may see an aborted call's status before the server's interceptor logs it
    for _ in range(500):
        lines = [r for r in caplog.records if getattr(r, "grpc_method", None)]
        if len(lines) >= 2:
            break
        await asyncio.sleep(0.01)
    assert [(r.levelno, getattr(r, "grpc_code", None)) for r in lines] == [
        (logging.DEBUG, "OK"),
        (logging.WARNING, "INVALID_ARGUMENT"),
    ]
    for record in lines:
        message = record.getMessage()
        assert f"/{EMBEDDING}/GenerateEmbeddings" in message
        assert "req-log" in message
        assert " ms " in message
