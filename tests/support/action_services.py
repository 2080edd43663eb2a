"""Real HTTP services that implement the actions of seed 003's examples, for workflow tests.

One uvicorn server hosts several services under path prefixes
(``/text-extraction/api/extract``, ``/sentiment-analysis/api/analyze``, ...), each with a
``/health``. Set as the HTTP proxy (``HTTP_PROXY``) of a process, it also answers for the seed's
hosts: ``http://text-extraction-service:8000/api/extract`` reaches
``/text-extraction/api/extract``. Every call is logged with its
``Idempotency-Key``; a key seen before with a success gets the stored answer again without the
action running twice (counted as a replay), as an idempotent callee would do.

Control: ``POST /__control`` with ``{"fail": {"<path>": n}}`` (the next n calls answer 503),
``{"delay": {"<path>": seconds}}``, ``{"status": {"<path>": code}}`` (answer that status always),
``{"reset": true}``; ``GET /__calls`` returns the log.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.threaded_server import ThreadedServer, serve_from_command_line

Action = Callable[[dict[str, Any]], dict[str, Any]]


def _extract(body: dict[str, Any]) -> dict[str, Any]:
    url = str(body.get("document_url", ""))
    return {"text": f"Text of {url}: a great product that works well.", "metadata": {"pages": 1}}


def _analyze(body: dict[str, Any]) -> dict[str, Any]:
    text = str(body.get("text", "")).lower()
    if "terrible" in text or "bad" in text:
        return {"sentiment": "negative", "score": -0.7}
    if "great" in text or "good" in text:
        return {"sentiment": "positive", "score": 0.8}
    return {"sentiment": "neutral", "score": 0.0}


def _summarize(body: dict[str, Any]) -> dict[str, Any]:
    text = str(body.get("text", ""))
    return {"summary": text[:40]}


def _translate(body: dict[str, Any]) -> dict[str, Any]:
    text = str(body.get("text", body.get("summary", "")))
    return {"translation": f"[{body.get('language', 'fr')}] {text}"}


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "received": body}


ACTIONS: dict[str, Action] = {
    "/text-extraction/api/extract": _extract,
    "/sentiment-analysis/api/analyze": _analyze,
    "/text-summarization/api/summarize": _summarize,
    "/translation/api/translate": _translate,
}


def object_schema(properties: dict[str, str], required: list[str]) -> dict[str, Any]:
    """A JSON Schema for an object whose named properties have the given JSON types."""
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
        "required": required,
    }


# service name -> (action, input schema, output schema), as the actions above answer
ACTION_SCHEMAS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "text-extraction": (
        "extract",
        object_schema({"document_url": "string"}, ["document_url"]),
        object_schema({"text": "string"}, ["text"]),
    ),
    "sentiment-analysis": (
        "analyze",
        object_schema({"text": "string"}, ["text"]),
        object_schema({"sentiment": "string", "score": "number"}, ["sentiment", "score"]),
    ),
    "text-summarization": (
        "summarize",
        object_schema({"text": "string"}, ["text"]),
        object_schema({"summary": "string"}, ["summary"]),
    ),
    "translation": (
        "translate",
        {"type": "object"},
        object_schema({"translation": "string"}, ["translation"]),
    ),
}


@dataclass
class CallLog:
    """What the services were asked, and what they answered."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.answers.clear()
            self.fail.clear()
            self.delay.clear()
            self.status.clear()


def build_app(log: CallLog) -> Starlette:
    async def control(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            with log.lock:
                if body.get("reset"):
                    log.calls.clear()
                    log.answers.clear()
                    log.fail.clear()
                    log.delay.clear()
                    log.status.clear()
                log.fail.update(body.get("fail", {}))
                log.delay.update(body.get("delay", {}))
                log.status.update(body.get("status", {}))
        return JSONResponse({"ok": True})

    async def calls(request: Request) -> Response:
        with log.lock:
            return JSONResponse({"calls": list(log.calls)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def action(request: Request) -> Response:
        path = request.url.path
        host = request.headers.get("host", "").split(":")[0]
        if host.endswith("-service"):  # reached as a proxy: http://<name>-service:8000/api/...
            path = f"/{host.removesuffix('-service')}{path}"
        key = request.headers.get("idempotency-key")
        body = await request.json() if request.method in ("POST", "PUT", "PATCH") else {}
        if not isinstance(body, dict):
            body = {"value": body}
        if request.method in ("GET", "DELETE"):
            body = dict(request.query_params)
        entry: dict[str, Any] = {"path": path, "key": key, "received_at": time.time()}
        with log.lock:
            failing = log.fail.get(path, 0)
            if failing:
                log.fail[path] = failing - 1
            forced = log.status.get(path)
            pause = log.delay.get(path, 0.0)
            stored = log.answers.get(key) if key else None
        if pause:
            await asyncio.sleep(pause)
        if failing or forced:
            entry["outcome"] = "failed"
            with log.lock:
                log.calls.append(entry)
            return JSONResponse({"detail": "unavailable on purpose"}, status_code=forced or 503)
        if stored is not None:
            entry["outcome"] = "replayed"
            answer = stored
        else:
            handler = ACTIONS.get(path, _echo)
            answer = handler(body)
            entry["outcome"] = "executed"
            if key:
                with log.lock:
                    log.answers[key] = answer
        entry["finished_at"] = time.time()
        with log.lock:
            log.calls.append(entry)
        return JSONResponse(answer)

    return Starlette(
        routes=[
            Route("/__control", control, methods=["GET", "POST"]),
            Route("/__calls", calls),
            Route("/{service}/health", health),
            Route("/{service}/api/health", health),
            Route("/{path:path}", action, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )


class ActionServices(ThreadedServer):
    """The services above on a real uvicorn server in a background thread."""

    def __init__(self, port: int | None = None) -> None:
        self.log = CallLog()
        super().__init__(build_app(self.log), port=port, name="action services")

    def endpoint(self, service: str) -> str:
        """The endpoint to register for ``service`` (its actions live under it)."""
        return f"{self.url}/{service}/api"

    def control(
        self,
        *,
        fail: dict[str, int] | None = None,
        delay: dict[str, float] | None = None,
        status: dict[str, int] | None = None,
    ) -> None:
        """As ``POST /__control``, from the process that runs the server."""
        with self.log.lock:
            self.log.fail.update(fail or {})
            self.log.delay.update(delay or {})
            self.log.status.update(status or {})

    def calls(self, path_part: str = "") -> list[dict[str, Any]]:
        with self.log.lock:
            return [call for call in self.log.calls if path_part in call["path"]]


def main() -> None:
    serve_from_command_line(build_app(CallLog()), description=__doc__)


if __name__ == "__main__":
    main()
