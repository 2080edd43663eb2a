"""``APIGatewayService`` over gRPC: the REST operations over the same deps and the same checks.

Requests are checked by the REST bodies' models (INVALID_ARGUMENT naming the
field); errors are raised as servicegrid errors and mapped by the server's
interceptor. A proto3 default (empty method, path or resource) means the REST
default. ``Proxy`` sends the ``google.protobuf.Value`` body as JSON, whole
numbers as integers (JSON has one number type; proto's is a double).
"""

from __future__ import annotations

import math
from typing import Any

import grpc
from google.protobuf import json_format

from servicegrid.apps._validation import validated
from servicegrid.apps.api_gateway.deps import GatewayDeps
from servicegrid.apps.api_gateway.health import check_service_name
from servicegrid.apps.api_gateway.schemas import (
    ProxyRequest,
    RateLimitCheckRequest,
    ServiceHealthAnswer,
    ValidateRequest,
)
from servicegrid.errors import ValidationError
from servicegrid.proto import api_gateway_pb2, api_gateway_pb2_grpc
from servicegrid.proto.api_gateway_pb2 import (
    InstanceHealth,
    ProxyResponse,
    RateLimitCheckResponse,
    ServiceHealthResponse,
    ValidateResponse,
)
from servicegrid.runtime import ServiceRegistration

__all__ = ["APIGatewayServicer", "json_of_value", "registration"]

_EXACT_INT = 2**53  # doubles hold every integer up to here exactly


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_INT:
        return int(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def json_of_value(value: Any) -> Any:
    """A ``google.protobuf.Value`` as the JSON value it holds (None when unset); whole numbers
    become ints. ValidationError naming ``body`` for NaN or infinity."""
    if value.WhichOneof("kind") is None:
        return None
    if value.WhichOneof("kind") == "number_value" and not math.isfinite(value.number_value):
        raise ValidationError.for_field("body", "must be JSON: NaN and Infinity have no JSON form")
    try:
        return _plain(json_format.MessageToDict(value))
    except (ValueError, json_format.Error) as error:
        raise ValidationError.for_field("body", f"must be JSON: {error}") from None


def _joined(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Headers as one value per lower-cased name, repeats joined by ``, `` (RFC 9110 5.3)."""
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _health_response(answer: ServiceHealthAnswer) -> ServiceHealthResponse:
    return ServiceHealthResponse(
        service=answer.service,
        status=answer.status,
        backend=answer.backend,
        instances=[
            InstanceHealth(
                address=instance.address,
                status=instance.status,
                response_time_ms=instance.response_time_ms,
                error=instance.error,
            )
            for instance in answer.instances
        ],
    )


class APIGatewayServicer(api_gateway_pb2_grpc.APIGatewayServiceServicer):
    """The gRPC face of the API gateway over ``deps`` (shared with the REST app)."""

    def __init__(self, deps: GatewayDeps) -> None:
        self.deps = deps

    async def Proxy(
        self, request: api_gateway_pb2.ProxyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ProxyResponse:
        data: dict[str, Any] = {
            "service": request.service,
            "path": request.path or "/",
            "headers": dict(request.headers),
            "body": json_of_value(request.body),
        }
        if request.method:
            data["method"] = request.method
        answer = await self.deps.forwarder.forward(validated(ProxyRequest, data))
        return ProxyResponse(
            status_code=answer.status, headers=_joined(answer.headers), body=answer.body
        )

    async def Validate(
        self,
        request: api_gateway_pb2.ValidateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ValidateResponse:
        checked = validated(
            ValidateRequest,
            {"api_key": request.api_key, "resource": request.resource, "action": request.action},
        )
        answer = self.deps.keys.check(checked.api_key, checked.resource, checked.action)
        return ValidateResponse(
            allowed=answer.allowed, principal=answer.principal, reason=answer.reason
        )

    async def GetServiceHealth(
        self,
        request: api_gateway_pb2.ServiceHealthRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ServiceHealthResponse:
        answer = await self.deps.health(check_service_name(request.service_name))
        return _health_response(answer)

    async def CheckRateLimit(
        self,
        request: api_gateway_pb2.RateLimitCheckRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> RateLimitCheckResponse:
        checked = validated(
            RateLimitCheckRequest,
            {"client_id": request.client_id, "resource": request.resource or "default"},
        )
        answer = self.deps.limiter.check(checked.client_id, checked.resource)
        return RateLimitCheckResponse(
            allowed=answer.allowed,
            remaining=answer.remaining,
            reset_after_seconds=answer.reset_after_seconds,
            retry_after_seconds=answer.retry_after_seconds,
        )


def registration(deps: GatewayDeps) -> ServiceRegistration:
    """The servicer over ``deps``, ready for :func:`~servicegrid.runtime.create_server`."""
    return ServiceRegistration.from_descriptor(
        api_gateway_pb2.DESCRIPTOR.services_by_name["APIGatewayService"],
        api_gateway_pb2_grpc.add_APIGatewayServiceServicer_to_server,
        APIGatewayServicer(deps),
    )
