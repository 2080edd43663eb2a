"""Seed 002's API gateway clients: ``APIGatewayClient`` (REST) and ``APIGatewayGRPCClient``.

.. code-block:: python

    async with APIGatewayClient() as gateway:                  # discovery:///api-gateway
        answer = await gateway.proxy_request("user-service", "GET", "/users/user-123")
        answer["status_code"], answer["body"]                  # the upstream's: 200, {...}
        await gateway.validate_request(api_key, "questions", "read")

A proxied answer is ``{"status_code", "headers", "body"}``: the upstream's,
whatever its status (a 404 from the user service is an answer, not an error);
``body`` is the parsed JSON when the upstream said JSON, else text. Only the
gateway's own failures (an unknown service, a bad request, no instance) raise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf.json_format import ParseDict, ParseError

from servicegrid.clients.app_grpc import AppGrpcClient
from servicegrid.clients.app_rest import AppRestClient, message_dict
from servicegrid.clients.grpc_checks import invalid_argument
from servicegrid.proto import api_gateway_pb2, api_gateway_pb2_grpc
from servicegrid.transports.base import Reply

__all__ = ["UPSTREAM_HEADER", "APIGatewayClient", "APIGatewayGRPCClient"]

_pb = api_gateway_pb2

UPSTREAM_HEADER: Final = "x-upstream-service"
"""The header the gateway puts on an upstream's answer it passes through."""


def _decoded(content_type: str, data: bytes) -> Any:
    """A body as JSON when ``content_type`` says so (and it parses), else as text."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            pass
    return data.decode("utf-8", "replace")


def _answer(status: int, headers: Mapping[str, str], data: bytes) -> dict[str, Any]:
    named = {name.lower(): value for name, value in headers.items()}
    named.pop(UPSTREAM_HEADER, None)
    body = _decoded(named.get("content-type", ""), data)
    return {"status_code": status, "headers": named, "body": body}


class APIGatewayClient(AppRestClient):
    """The API gateway over REST; every method raises a ServiceError for the gateway's own
    failures, none for an upstream's answer."""

    catalogue_name = "api-gateway"

    def _passthrough(self, reply: Reply) -> bool:
        return reply.header(UPSTREAM_HEADER) is not None

    async def proxy_request(
        self,
        service: str,
        method: str = "GET",
        path: str = "/",
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """Forward one request to ``service`` (a discovery name): the upstream's
        ``{"status_code", "headers", "body"}``. Sent once: a proxied request is never repeated."""
        payload = {
            "service": service,
            "method": method,
            "path": path,
            "headers": dict(headers or {}),
            "body": body,
        }
        reply = await self._send("POST", "/proxy", body=payload)
        return _answer(reply.status, dict(reply.header_items()), reply.content)

    async def validate_request(self, api_key: str, resource: str, action: str) -> dict[str, Any]:
        """Whether ``api_key`` may do ``action`` on ``resource``: ``{"allowed", "principal",
        "reason"}``."""
        payload = {"api_key": api_key, "resource": resource, "action": action}
        result: dict[str, Any] = await self._json(
            "POST", "/validate", body=payload, idempotent=True
        )
        return result

    async def get_service_health(self, service_name: str) -> dict[str, Any]:
        """Every instance of ``service_name`` probed: ``{"service", "status", "instances",
        "backend"}``."""
        path = f"/health/{self._id('service_name', service_name)}"
        result: dict[str, Any] = await self._json("GET", path)
        return result

    async def check_rate_limit(self, client_id: str, resource: str = "default") -> dict[str, Any]:
        """Count one request of ``client_id``: ``{"allowed", "remaining", "reset_after_seconds",
        "retry_after_seconds"}``."""
        payload = {"client_id": client_id, "resource": resource}
        result: dict[str, Any] = await self._json("POST", "/rate-limit/check", body=payload)
        return result


class APIGatewayGRPCClient(AppGrpcClient):
    """The API gateway over gRPC (``servicegrid.v1.APIGatewayService``), answering as the REST
    client. Every method raises a ServiceError that is also a ``grpc.RpcError``."""

    catalogue_name = "api-gateway"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["APIGatewayService"].full_name
    stub_class = api_gateway_pb2_grpc.APIGatewayServiceStub

    async def proxy_request(
        self,
        service: str,
        method: str = "GET",
        path: str = "/",
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """Forward one request to ``service`` (a discovery name): the upstream's
        ``{"status_code", "headers", "body"}``. Sent once: a proxied request is never repeated."""
        request = _pb.ProxyRequest(
            service=service, method=method, path=path, headers=dict(headers or {})
        )
        if body is not None:
            try:
                ParseDict(body, request.body)
            except ParseError as error:
                raise invalid_argument(
                    self.service_name, "body", f"must be JSON: {error}"
                ) from None
        response = await self._rpc("Proxy", request, idempotent=False)
        return _answer(response.status_code, dict(response.headers), response.body)

    async def validate_request(self, api_key: str, resource: str, action: str) -> dict[str, Any]:
        """Whether ``api_key`` may do ``action`` on ``resource``: ``{"allowed", "principal",
        "reason"}``."""
        request = _pb.ValidateRequest(api_key=api_key, resource=resource, action=action)
        return message_dict(await self._rpc("Validate", request))

    async def get_service_health(self, service_name: str) -> dict[str, Any]:
        """Every instance of ``service_name`` probed: ``{"service", "status", "instances",
        "backend"}``."""
        request = _pb.ServiceHealthRequest(service_name=self._id("service_name", service_name))
        return message_dict(await self._rpc("GetServiceHealth", request))

    async def check_rate_limit(self, client_id: str, resource: str = "default") -> dict[str, Any]:
        """Count one request of ``client_id``: ``{"allowed", "remaining", "reset_after_seconds",
        "retry_after_seconds"}``."""
        request = _pb.RateLimitCheckRequest(client_id=client_id, resource=resource)
        return message_dict(await self._rpc("CheckRateLimit", request, idempotent=False))
