"""Stand-ins for remote LLM hosts (a vLLM, llama.cpp or Ollama server's OpenAI-compatible API).

Each :class:`LLMHostStandIn` is a small local OpenAI-compatible HTTP server on a real uvicorn
server in a background thread, on a free loopback port. It serves
``POST /v1/chat/completions`` (a JSON completion, or with ``"stream": true`` server-sent
events: ``data: {...}\\n\\n`` chunks, then ``data: [DONE]``), ``GET /v1/models`` and
``GET /health``, counts what it served, and misbehaves when told to, at run time:

    with LLMHostStandIns(3) as (fast, slow, dead):
        slow.slow(0.05)            # answer after 50 ms
        dead.die()                 # stop serving: connections are refused (revive() undoes it)
        fast.fail(503)             # answer chat calls with HTTP 503 (recover() undoes it)
        fast.break_streams_after(2)  # drop the connection after 2 chunks of a stream
        fast.served                # chat completions answered (failures included)

``python -m tests.support.llm_hosts --port N [--name NAME] [--delay S]`` serves one as a
process of its own (the benchmark does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.threaded_server import ThreadedServer, free_port

__all__ = ["Behaviour", "LLMHostStandIn", "LLMHostStandIns", "build_app"]

MODEL = "standin-llm"


@dataclass(frozen=True)
class Behaviour:
    """How a stand-in answers chat calls now; the defaults answer at once and well."""

    status: int | None = None  # answer with this HTTP error status
    delay: float = 0.0  # seconds before answering
    break_after: int | None = None  # drop the connection after this many stream chunks
    health_status: int = 200  # what GET /health answers (404: as servers without one)


@dataclass
class _State:
    name: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, path: str) -> Behaviour:
        with self.lock:
            self.counts[path] += 1
            return self.behaviour


def _pieces(name: str) -> list[str]:
    return ["Hello", " from", f" {name}"]


def _completion(name: str, body: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{name}-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", MODEL),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(_pieces(name))},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


def _chunk(name: str, model: str, delta: dict[str, str], finish: str | None) -> bytes:
    chunk = {
        "id": f"chatcmpl-{name}",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def _events(name: str, model: str, break_after: int | None) -> AsyncIterator[bytes]:
    chunks = [_chunk(name, model, {"role": "assistant"}, None)]
    chunks += [_chunk(name, model, {"content": piece}, None) for piece in _pieces(name)]
    chunks += [_chunk(name, model, {}, "stop"), b"data: [DONE]\n\n"]
    for sent, chunk in enumerate(chunks):
        if break_after is not None and sent >= break_after:
            raise ConnectionAbortedError("stand-in told to break the stream")  # uvicorn drops it
        yield chunk
        await asyncio.sleep(0)  # one chunk per write, as a generating server sends them


def build_app(state: _State) -> Starlette:
    async def chat(request: Request) -> Response:
        body = await request.json()
        behaviour = state.serve("chat")
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.status is not None:
            error = {"message": f"{state.name} told to fail", "type": "server_error"}
            return JSONResponse({"error": error}, status_code=behaviour.status)
        if body.get("stream"):
            events = _events(state.name, body.get("model", MODEL), behaviour.break_after)
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(_completion(state.name, body, state.counts["chat"]))

    async def models(request: Request) -> Response:
        state.serve("models")
        model = {"id": MODEL, "object": "model", "created": 0, "owned_by": state.name}
        return JSONResponse({"object": "list", "data": [model]})

    async def health(request: Request) -> Response:
        status = state.serve("health").health_status
        return JSONResponse({"status": "ok" if status < 400 else "down"}, status_code=status)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


class LLMHostStandIn(ThreadedServer):
    """One stand-in host; see the module docstring. ``url`` is its origin."""

    def __init__(self, name: str = "host", *, port: int | None = None) -> None:
        self.name = name
        self._state = _State(name)
        # graceful_shutdown=0: die() cuts requests in flight, as a crashed server does
        super().__init__(build_app(self._state), port=port, name=name, graceful_shutdown=0)
        self.alive = self._served_before = False

    @property
    def served(self) -> int:
        """Chat completion requests received (answered well or not)."""
        with self._state.lock:
            return self._state.counts["chat"]

    def count(self, path: str) -> int:
        """Requests received on ``path``: ``"chat"``, ``"models"`` or ``"health"``."""
        with self._state.lock:
            return self._state.counts[path]

    def _set(self, **changes: Any) -> None:
        with self._state.lock:
            self._state.behaviour = replace(self._state.behaviour, **changes)

    def fail(self, status: int = 503) -> None:
        self._set(status=status)

    def slow(self, seconds: float) -> None:
        self._set(delay=seconds)

    def break_streams_after(self, chunks: int | None) -> None:
        self._set(break_after=chunks)

    def health(self, status: int) -> None:
        self._set(health_status=status)

    def recover(self) -> None:
        """Answer well again (a dead stand-in stays dead until :meth:`revive`)."""
        with self._state.lock:
            self._state.behaviour = Behaviour()

    def reset(self) -> None:
        """Alive, answering well, with every count at zero."""
        self.recover()
        with self._state.lock:
            self._state.counts.clear()
        if not self.alive:
            self.revive()

    def start(self) -> Self:
        for tries_left in (2, 1, 0):
            try:
                super().start()
                break
            except RuntimeError:
                if self._served_before or not tries_left:
                    raise
                # another process took the free port before uvicorn bound it: take another
                self.port = free_port()
                self._server = uvicorn.Server(self._server.config)
                self._server.config.port = self.port
        self.alive = self._served_before = True
        return self

    def stop(self) -> None:
        self.alive = False
        super().stop()

    def die(self) -> None:
        """Stop serving: requests in flight are cut and new connections refused."""
        self.stop()

    def revive(self) -> None:
        """Serve again on the same port."""
        self._server = uvicorn.Server(self._server.config)
        self.start()


class LLMHostStandIns:
    """``count`` stand-ins named ``host1``... started together; ``with`` runs them all."""

    def __init__(self, count: int) -> None:
        self.hosts = [LLMHostStandIn(f"host{i}") for i in range(1, count + 1)]

    def __enter__(self) -> Self:
        for host in self.hosts:
            host.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for host in self.hosts:
            host.stop()

    def __iter__(self) -> Iterator[LLMHostStandIn]:
        return iter(self.hosts)

    def __getitem__(self, index: int) -> LLMHostStandIn:
        return self.hosts[index]

    def reset(self) -> None:
        for host in self.hosts:
            host.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="host")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    state = _State(args.name, Behaviour(delay=args.delay))
    uvicorn.run(
        build_app(state), host="127.0.0.1", port=args.port, log_level="critical", access_log=False
    )


if __name__ == "__main__":
    main()
