"""A stand-in for a remote vision LLM: a small local OpenAI-compatible HTTP server.

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` with FastAPI on a real
uvicorn server in a background thread, on a free loopback port. Each chat request is
recorded and answered with the next queued :class:`Reply` (then with the default one):
a DocTags or markdown string, an empty choice list, an HTTP error, or after a delay.

    with OpenAIStandIn() as llm:
        llm.queue(Reply("<doctag><text>Hi</text></doctag>"))
        VLMEngine(llm.base_url, llm.model).process(...)
        llm.requests[0].image_urls
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.threaded_server import ThreadedServer

__all__ = ["OpenAIStandIn", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One answer: ``content`` as the message, or ``status`` >= 400, or no choices at all."""

    content: str = ""
    status: int = 200
    delay: float = 0.0
    no_choices: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def model(self) -> Any:
        return self.body.get("model")

    @property
    def image_urls(self) -> list[str]:
        """The ``image_url`` URLs of every message part, in order."""
        urls: list[str] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                urls.extend(
                    part["image_url"]["url"]
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "image_url"
                )
        return urls

    @property
    def texts(self) -> list[str]:
        """The text parts (and plain-string contents) of every message, in order."""
        texts: list[str] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
        return texts


class OpenAIStandIn(ThreadedServer):
    """The stand-in server; ``base_url`` ends in ``/v1``, as OpenAI clients expect."""

    def __init__(self, *, model: str = "standin-vlm", reply: Reply | None = None) -> None:
        self.model = model
        self.default = reply or Reply("<doctag><text><loc_0><loc_0><loc_500><loc_50>Hi</text>")
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        super().__init__(self._app(), name="OpenAI stand-in server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order, then with ``default``."""
        with self._lock:
            self._script.extend(replies)

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            return self._script.popleft() if self._script else self.default

    async def _wait(self, seconds: float) -> None:
        # Waits on the stop flag, so that shutting down never waits out a long delay.
        await asyncio.to_thread(self._stopping.wait, seconds)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            reply = self._next(RecordedRequest(body=body, headers=dict(request.headers)))
            if reply.delay:
                await self._wait(reply.delay)
            if reply.status >= 400:
                error = {"message": "stand-in failure", "type": "server_error"}
                return JSONResponse({"error": error}, status_code=reply.status)
            message = {"role": "assistant", "content": reply.content}
            choices = (
                []
                if reply.no_choices
                else [{"index": 0, "message": message, "finish_reason": "stop"}]
            )
            return JSONResponse(
                {
                    "id": f"chatcmpl-standin-{len(self.requests)}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", self.model),
                    "choices": choices,
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                }
            )

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            model = {"id": self.model, "object": "model", "created": 0, "owned_by": "standin"}
            return {"object": "list", "data": [model]}

        return app

    def stop(self) -> None:
        self._stopping.set()
        super().stop()
