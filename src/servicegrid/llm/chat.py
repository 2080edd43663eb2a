"""OpenAI chat completions: the request body, and the answer as a typed value."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from servicegrid.errors import InvalidResponse, ServiceError
from servicegrid.transports.http import error_for_response

__all__ = [
    "CHAT_PATH",
    "ChatCompletion",
    "Messages",
    "chat_payload",
    "delta_text",
    "error_for_answer",
    "parse_chat",
]

CHAT_PATH = "/v1/chat/completions"

Messages = str | Sequence[Mapping[str, Any]]
"""Chat messages (``[{"role": "user", "content": "Hi"}]``); a plain string is one user message."""


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """One answer: the first choice's text, why it stopped, token usage, which host answered."""

    content: str
    model: str
    finish_reason: str | None
    usage: Mapping[str, Any]
    host: str
    raw: Mapping[str, Any] = field(repr=False)


def chat_payload(
    messages: Messages, model: str | None, params: Mapping[str, Any], *, stream: bool = False
) -> dict[str, Any]:
    """The request body; ``params`` (temperature, max_tokens, ...) go in as given."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body: dict[str, Any] = {"messages": [dict(m) for m in messages], **params}
    if model is not None:
        body["model"] = model
    if stream:
        body["stream"] = True
    return body


def _bad(host: str, why: str) -> InvalidResponse:
    return InvalidResponse(f"chat completion from {host}: {why}", service=host)


def parse_chat(body: bytes, host: str) -> ChatCompletion:
    """The completion in ``body``; InvalidResponse when it is not one."""
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise _bad(host, f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _bad(host, "not a JSON object")
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _bad(host, "no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str | None):
        raise _bad(host, "choices[0].message.content is not text")
    usage = raw.get("usage")
    return ChatCompletion(
        content=content or "",
        model=str(raw.get("model", "")),
        finish_reason=choices[0].get("finish_reason"),
        usage=usage if isinstance(usage, dict) else {},
        host=host,
        raw=raw,
    )


def delta_text(data: str, host: str) -> str:
    """The text in one streamed chunk (``choices[0].delta.content``), or ``""``."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise _bad(host, f"stream chunk is not JSON: {exc}") from None
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""  # usage-only and keep-alive chunks carry no choices
    delta = choices[0].get("delta")
    text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


def error_for_answer(response: httpx.Response, host: str) -> ServiceError:
    """The typed error for an error status from ``host``."""
    return error_for_response(
        response.status_code,
        {"retry-after": response.headers.get("retry-after", "")},
        response.text,
        method=response.request.method,
        url=str(response.request.url),
        service=host,
    )
