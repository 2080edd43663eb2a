"""servicegrid.transports.grpc: status translation, channels, call metadata."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import grpc.aio
import pytest

from servicegrid.errors import (
    DeadlineExceeded,
    ResourceExhausted,
    ServerError,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.transports.grpc import (
    DEFAULT_CHANNEL_OPTIONS,
    call_metadata,
    channel_credentials,
    channel_options,
    create_channel,
    map_grpc_errors,
)


def rpc_error(
    code: grpc.StatusCode, details: str = "", trailers: tuple[tuple[str, str | bytes], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, ServiceUnavailableError),
        (grpc.StatusCode.INVALID_ARGUMENT, ValidationError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
    ],
)
def test_map_grpc_errors_translates_by_status_code(
    code: grpc.StatusCode, expected: type[ServiceError]
) -> None:
    original = rpc_error(code, "server says no")
    with pytest.raises(expected) as caught, map_grpc_errors("embedding", "Svc/Method"):
        raise original
    error = caught.value
    assert error.message == "server says no"
    assert error.service == "embedding"
    assert error.__cause__ is original
    assert error.details["grpc_code"] == code.name
    assert error.details["method"] == "Svc/Method"
    assert error.retry_after is None


def test_empty_details_fall_back_to_the_class_message() -> None:
    with pytest.raises(ServiceUnavailableError) as caught, map_grpc_errors(None, "x"):
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)
    assert "UNAVAILABLE" in caught.value.message


@pytest.mark.parametrize(
    ("trailers", "seconds"),
    [
        ((("retry-after", "7"),), 7.0),
        ((("retry-after", b"2.5"),), 2.5),
        ((("grpc-retry-pushback-ms", "1500"),), 1.5),
        ((("retry-after", "soon"),), None),
        ((("other", "1"),), None),
    ],
)
def test_retry_after_comes_from_the_trailers(
    trailers: tuple[tuple[str, str | bytes], ...], seconds: float | None
) -> None:
    with pytest.raises(ResourceExhausted) as caught, map_grpc_errors(None, "x"):
        raise rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", trailers)
    assert caught.value.retry_after == seconds


def test_an_rpc_error_without_a_code_is_a_server_error() -> None:
    original = grpc.RpcError("opaque")
    with pytest.raises(ServerError) as caught, map_grpc_errors("svc", "x"):
        raise original
    assert caught.value.__cause__ is original
    assert caught.value.details["grpc_code"] == "UNKNOWN"


def test_other_exceptions_pass_through_untouched() -> None:
    with pytest.raises(KeyError), map_grpc_errors("svc", "x"):
        raise KeyError("mine")


# ---- metadata ----------------------------------------------------------------------


def test_call_metadata_carries_request_tenant_and_trace() -> None:
    metadata = dict(call_metadata("tenant-a", "corr-1"))
    assert list(metadata) == ["x-request-id", "x-tenant-id", "traceparent"]
    assert metadata["x-request-id"] == "corr-1"
    assert metadata["x-tenant-id"] == "tenant-a"
    version, trace_id, span_id, flags = metadata["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", span_id)
    assert trace_id != "0" * 32


def test_call_metadata_makes_a_request_id_and_reuses_a_hex_one_as_trace_id() -> None:
    fresh = dict(call_metadata())
    assert "x-tenant-id" not in fresh
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["x-request-id"])
    assert fresh["traceparent"].split("-")[1] == fresh["x-request-id"]

    correlation = "0af7651916cd43dd8448eb211c80319c"
    assert dict(call_metadata(None, correlation))["traceparent"].split("-")[1] == correlation


@pytest.mark.parametrize("bad", ["", "two\nlines", "café", 42])
def test_call_metadata_rejects_values_that_cannot_travel(bad: object) -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        call_metadata(bad, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="correlation_id"):
        call_metadata(None, bad)  # type: ignore[arg-type]


# ---- channels ----------------------------------------------------------------------


def test_channel_options_override_the_defaults_by_key() -> None:
    merged = dict(channel_options([("grpc.max_receive_message_length", 1), ("grpc.custom", "x")]))
    assert merged["grpc.max_receive_message_length"] == 1
    assert merged["grpc.custom"] == "x"
    assert (
        merged["grpc.keepalive_time_ms"] == dict(DEFAULT_CHANNEL_OPTIONS)["grpc.keepalive_time_ms"]
    )


async def test_create_channel_is_plaintext_by_default() -> None:
    channel = create_channel("127.0.0.1:1")
    assert isinstance(channel, grpc.aio.Channel)
    await channel.close()


def test_tls_files_that_cannot_be_read_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ca_path"):
        channel_credentials(ca_path=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="both cert_path and key_path"):
        channel_credentials(cert_path=str(tmp_path / "cert.pem"))
    with pytest.raises(ValueError, match="tls is False"):
        create_channel("127.0.0.1:1", ca_path=str(tmp_path / "ca.pem"))
