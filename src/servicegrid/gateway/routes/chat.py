"""``POST /v1/chat/completions``: OpenAI chat completions through the distributed LLM client.

The body is checked only for what the gateway needs (``messages``, ``model``,
``stream``) and otherwise passed through unchanged, so every OpenAI parameter
reaches the hosts. Failures are raised as servicegrid errors; the app's
handlers give them their status and OpenAI's error shape.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any, Final

import anyio
import httpx
import pydantic
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from servicegrid.errors import (
    InvalidResponse,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
    field_error,
)
from servicegrid.gateway.errors import error_code
from servicegrid.gateway.routes import clients_of, settings_of
from servicegrid.llm import DistributedLLMClient
from servicegrid.llm.chat import CHAT_PATH, error_for_answer

__all__ = ["CHAT_PATH", "ChatMessage", "ChatRequest", "chat_router"]

_UPSTREAM: Final = "llm"
# an event ends at a blank line, in any of the three line endings SSE allows
_EVENT_ENDS: Final = (b"\r\n\r\n", b"\n\n", b"\r\r")


class ChatMessage(pydantic.BaseModel):
    """One message; only its ``role`` is checked."""

    model_config = pydantic.ConfigDict(extra="allow")

    role: pydantic.StrictStr


class ChatRequest(pydantic.BaseModel):
    """The fields of OpenAI's chat completion request the gateway reads."""

    model_config = pydantic.ConfigDict(extra="allow")

    messages: list[ChatMessage] = pydantic.Field(min_length=1)
    model: pydantic.StrictStr | None = None
    stream: pydantic.StrictBool | None = None


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references replaced by the definitions (OpenAPI has no
    ``$defs`` of its own at a request body)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


_BODY_SCHEMA: Final = {
    "required": True,
    "content": {"application/json": {"schema": _inlined(ChatRequest.model_json_schema())}},
}


def chat_router() -> APIRouter:
    """A router with ``POST /v1/chat/completions``; reads ``app.state.clients.llm`` and
    ``app.state.settings.llm_model``."""
    router = APIRouter(tags=["chat"])

    @router.post(
        CHAT_PATH,
        summary="Create a chat completion (OpenAI), streamed or not",
        response_model=None,
        openapi_extra={"requestBody": _BODY_SCHEMA},
    )
    async def create_chat_completion(request: Request) -> Response:
        body, stream = _parse(await request.body())
        if body.get("model") is None:
            body.pop("model", None)
            if model := settings_of(request).llm_model:
                body["model"] = model
        llm = _llm_client(request)
        # the caller's Authorization is for the gateway; the hosts get OPENAI_API_KEY
        headers = {}
        if request_id := request.headers.get("x-request-id"):
            headers["x-request-id"] = request_id
        if stream:
            return await _stream(llm, body, headers)
        return _relay(await llm.post(CHAT_PATH, json=body, headers=headers))

    return router


def _llm_client(request: Request) -> DistributedLLMClient:
    llm = clients_of(request).llm
    if llm is None:
        raise ServiceUnavailableError(
            "no LLM host is configured: set SERVICEGRID_LLM_URLS (comma-separated base URLs) "
            "or SERVICEGRID_LLM_SERVICE (a service found through discovery)",
            service=_UPSTREAM,
        )
    return llm


def _parse(raw: bytes) -> tuple[dict[str, Any], bool]:
    """The body as JSON and whether it asks for a stream; ValidationError naming the field."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ValidationError.for_field(
            "", f"the body is not JSON: {exc}", type="json_invalid"
        ) from None
    if not isinstance(body, dict):
        raise ValidationError.for_field("", "the body must be a JSON object", type="object_type")
    try:
        request = ChatRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        problems = [
            field_error(".".join(str(part) for part in error["loc"]), error["msg"], error["type"])
            for error in exc.errors(include_url=False)
        ]
        first = problems[0]
        raise ValidationError(
            f"{first['field']}: {first['message']}", validation_errors=problems
        ) from None
    return body, bool(request.stream)


def _relay(answer: httpx.Response) -> Response:
    """A host's answer to the caller: a completion (2xx) or the caller's own mistake (4xx)."""
    status = answer.status_code
    if status in (401, 403):
        # the hosts refused the gateway's credentials, not the caller's
        raise InvalidResponse(
            f"the LLM host refused the gateway's credentials (HTTP {status}); check OPENAI_API_KEY",
            service=_UPSTREAM,
        )
    if not (200 <= status < 300 or 400 <= status < 500):
        raise error_for_answer(answer, _UPSTREAM)
    try:
        json.loads(answer.content)
    except ValueError:
        if status >= 400:
            raise error_for_answer(answer, _UPSTREAM) from None
        raise InvalidResponse("the LLM host's answer is not JSON", service=_UPSTREAM) from None
    return Response(answer.content, status_code=status, media_type="application/json")


async def _stream(
    llm: DistributedLLMClient, body: dict[str, Any], headers: dict[str, str]
) -> Response:
    """Open the stream (failing over until its first byte), then relay it as it arrives."""
    opened = contextlib.AsyncExitStack()
    async with contextlib.AsyncExitStack() as guard:
        guard.push_async_callback(opened.aclose)  # until the response owns it
        answer = await opened.enter_async_context(
            llm.stream("POST", CHAT_PATH, json=body, headers=headers)
        )
        if answer.status_code >= 400:
            await answer.aread()
            return _relay(answer)
        guard.pop_all()
    return _UpstreamEvents(answer, opened)


class _UpstreamEvents(StreamingResponse):
    """Relays an opened upstream stream and closes it however the exchange ends."""

    def __init__(self, answer: httpx.Response, opened: contextlib.AsyncExitStack) -> None:
        self._events = _whole_events(answer)
        self._opened = opened
        super().__init__(self._events, media_type="text/event-stream")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn drops writes to a caller that went away without a word, so listen for it:
        # a caller that went away must not leave the host generating
        try:
            async with anyio.create_task_group() as tasks:

                async def relay() -> None:
                    with contextlib.suppress(OSError):  # the caller went away mid-write
                        await self.stream_response(send)
                    tasks.cancel_scope.cancel()

                tasks.start_soon(relay)
                await self.listen_for_disconnect(receive)
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self._opened.aclose()


async def _whole_events(answer: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The upstream's bytes up to each event's end; if it breaks, an SSE error event in place of
    the partial one, so the caller sees a failure rather than a silent cut."""
    pending = b""
    try:
        async for chunk in answer.aiter_bytes():
            pending += chunk
            end = max(
                pending.rfind(mark) + len(mark) if mark in pending else 0 for mark in _EVENT_ENDS
            )
            if end:
                yield pending[:end]
                pending = pending[end:]
    except ServiceError as error:
        yield _error_event(error)
        return
    if pending:
        yield pending


def _error_event(error: ServiceError) -> bytes:
    """OpenAI's error shape as one event; the code is the error's class, snake_cased."""
    detail = {
        "message": f"the LLM host's stream broke off: {error}",
        "type": "server_error",  # part of the answer came: the caller's request was fine
        "param": None,
        "code": error_code(error),
    }
    return f"data: {json.dumps({'error': detail})}\n\n".encode()
