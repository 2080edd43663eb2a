"""A real HTTP server (uvicorn) that misbehaves on command, for reliability tests.

Modes: ``ok`` (200 JSON), ``fail`` (``status``, optionally with ``Retry-After``),
``slow`` (answers after ``delay`` seconds), ``close`` (drops the connection in
the middle of the response), ``text`` (200 with a non-JSON body). ``script``
queues one mode per request before falling back to ``mode``.

In-process: ``with FaultyServer() as server: server.set(mode="fail")``.
As a process that a test can SIGKILL: ``python -m tests.support.faulty_server --port N``,
controlled through ``POST /__control``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.support.threaded_server import ThreadedServer, free_port, serve_from_command_line

__all__ = ["Behaviour", "FaultyServer", "build_app", "free_port"]


@dataclass
class Behaviour:
    mode: str = "ok"
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    script: deque[dict[str, Any]] = field(default_factory=deque)
    hits: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self, path: str) -> dict[str, Any]:
        with self.lock:
            self.hits[path] += 1
            if self.script:
                return {**self.defaults(), **self.script.popleft()}
            return self.defaults()

    def defaults(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
        }

    def update(self, **changes: Any) -> None:
        with self.lock:
            script = changes.pop("script", None)
            if script is not None:
                self.script = deque(script)
            for key, value in changes.items():
                setattr(self, key, value)

    @property
    def total_hits(self) -> int:
        with self.lock:
            return sum(self.hits.values())


class _DropConnection:
    """Promise 100 bytes, send 10: the server must abort the connection mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"100"), (b"content-type", b"application/json")],
            }
        )
        # h11 refuses to end a short message and uvicorn aborts the connection: that is the point.
        await send({"type": "http.response.body", "body": b'{"partial"', "more_body": False})


def build_app(behaviour: Behaviour) -> Starlette:
    async def control(request: Request) -> Response:
        if request.method == "POST":
            behaviour.update(**(await request.json()))
        return JSONResponse({**behaviour.defaults(), "hits": dict(behaviour.hits)})

    async def anything(request: Request) -> Response:
        action = behaviour.next_action(request.url.path)
        if action["delay"] and action["mode"] in ("slow", "fail", "ok"):
            await asyncio.sleep(action["delay"])
        mode = action["mode"]
        if mode == "fail":
            headers = {"Retry-After": action["retry_after"]} if action["retry_after"] else {}
            return JSONResponse(
                {"error": "injected", "status": action["status"]},
                status_code=action["status"],
                headers=headers,
            )
        if mode == "close":
            return _DropConnection()  # type: ignore[return-value]
        if mode == "text":
            return PlainTextResponse("<html>not json</html>", media_type="text/html")
        body: dict[str, Any] = {"ok": True, "path": request.url.path, "method": request.method}
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            body["echo"] = raw.decode() if raw else None
        return JSONResponse(body)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/__control", control, methods=["GET", "POST"]),
            Route("/{path:path}", anything, methods=methods),
        ]
    )


class FaultyServer(ThreadedServer):
    """The app above on a real uvicorn server in a background thread, on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.behaviour = Behaviour()
        # logs at "critical" only: it fails on purpose, and its tracebacks are noise
        super().__init__(build_app(self.behaviour), port=port, name="faulty server")

    def set(self, **changes: Any) -> None:
        self.behaviour.update(**changes)


def main() -> None:
    serve_from_command_line(build_app(Behaviour()), description=__doc__)


if __name__ == "__main__":
    main()
