"""Sample action services for seed 003's workflows: text extraction, sentiment, summarization.

``make up`` runs them (``servicegrid serve text-extraction``, ``sentiment-analysis``,
``text-summarization``) so that seed 003's example runs on one machine: it registers
``http://text-extraction-service:8000/api``, and the integration service finds that name through
discovery (``TEXT_EXTRACTION_SERVICE_URL``, by default ``http://localhost:8010``).

.. code-block:: text

    POST /api/extract    {"document_url": "..."}  -> {"text", "metadata": {"pages", "source"}}
    POST /api/analyze    {"text": "..."}          -> {"sentiment", "score"}
    POST /api/summarize  {"text": "...", "max_length": 200} -> {"summary"}
    GET  /health, GET /api/health

Each answer is computed from the input alone: extraction never fetches the URL it is given. A
request repeating an ``Idempotency-Key`` gets the first answer to that key again. Bad input is a
422 naming the field; other fields are ignored, so a workflow step may hand on the whole output of
the step before (seed 003's example does: the sentiment step gets ``{"text", "metadata"}``).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Final

import uvicorn
from fastapi import APIRouter, FastAPI, Header
from pydantic import BaseModel, Field

from servicegrid.discovery.registration import announced
from servicegrid.runtime.uvicorn_server import GracefulServer
from servicegrid.settings import Settings

__all__ = ["SAMPLE_SERVICES", "create_sample_app", "run_sample_service"]

_log = logging.getLogger("servicegrid.apps")

MAX_TEXT: Final = 100_000
REMEMBERED_KEYS: Final = 10_000

_POSITIVE: Final = frozenset(
    [
        "good",
        "great",
        "excellent",
        "love",
        "loved",
        "like",
        "works",
        "well",
        "happy",
        "useful",
        "fast",
        "reliable",
    ]
)
_NEGATIVE: Final = frozenset(
    [
        "bad",
        "terrible",
        "awful",
        "poor",
        "hate",
        "hated",
        "broken",
        "slow",
        "useless",
        "fails",
        "failed",
        "wrong",
    ]
)
_WORD = re.compile(r"[a-z']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


class ExtractRequest(BaseModel):
    document_url: str = Field(min_length=1, max_length=2048)


class TextRequest(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


class SummarizeRequest(TextRequest):
    max_length: int = Field(default=200, ge=1, le=MAX_TEXT)


def extract(request: ExtractRequest) -> dict[str, Any]:
    """Text made from the URL itself (the document is never fetched)."""
    url = request.document_url
    return {
        "text": f"Text of {url}: a great product that works well.",
        "metadata": {"pages": 1, "source": url},
    }


def analyze(request: TextRequest) -> dict[str, Any]:
    """Sentiment by counting positive and negative words; score in [-1, 1]."""
    words = _WORD.findall(request.text.lower())
    positive = sum(word in _POSITIVE for word in words)
    negative = sum(word in _NEGATIVE for word in words)
    score = round((positive - negative) / max(1, positive + negative), 2)
    sentiment = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {"sentiment": sentiment, "score": score}


def summarize(request: SummarizeRequest) -> dict[str, Any]:
    """The first sentence, cut to ``max_length`` characters."""
    first = _SENTENCE_END.split(request.text.strip(), maxsplit=1)[0]
    return {"summary": first[: request.max_length]}


# service name -> (action, request model, answer)
SAMPLE_SERVICES: Final[dict[str, tuple[str, type[BaseModel], Callable[[Any], dict[str, Any]]]]] = {
    "text-extraction": ("extract", ExtractRequest, extract),
    "sentiment-analysis": ("analyze", TextRequest, analyze),
    "text-summarization": ("summarize", SummarizeRequest, summarize),
}


def create_sample_app(service: str) -> FastAPI:
    """The app of the sample service ``service`` (a key of :data:`SAMPLE_SERVICES`)."""
    action, model, answer = SAMPLE_SERVICES[service]
    answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
    api = APIRouter(prefix="/api")

    async def run(
        body: BaseModel,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        if idempotency_key is not None and idempotency_key in answers:
            return answers[idempotency_key]
        result = answer(body)
        if idempotency_key is not None:
            answers[idempotency_key] = result
            if len(answers) > REMEMBERED_KEYS:
                answers.popitem(last=False)
        return result

    # the body's model is chosen here, at run time: give FastAPI the class, not its name
    run.__annotations__["body"] = model

    async def health() -> dict[str, str]:
        return {"status": "healthy", "service": service}

    api.add_api_route(f"/{action}", run, methods=["POST"], summary=f"{service}: {action}")
    api.add_api_route("/health", health, methods=["GET"], summary="Health")
    app = FastAPI(title=f"servicegrid sample {service} service")
    app.include_router(api)
    app.add_api_route("/health", health, methods=["GET"], summary="Health")
    return app


async def run_sample_service(settings: Settings, *, service: str, host: str, port: int) -> None:
    """Serve the sample service ``service`` on ``host:port`` until SIGTERM or SIGINT."""
    config = uvicorn.Config(
        create_sample_app(service), host=host, port=port, log_level=settings.log_level.lower()
    )
    server = GracefulServer(config)
    _log.info("sample %s service on http://%s:%d/api", service, host, port)
    async with announced(settings, service, port=port):
        await server.serve()
    if not server.started:
        raise RuntimeError(f"could not serve on {host}:{port}")
