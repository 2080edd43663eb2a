"""Fuzz the gateway's OpenAPI with schemathesis: no 5xx but a stopped upstream's (issue 14, 2).

    .venv/bin/python tools/fuzz_gateway.py [--requests 5000] [--seed 0]

The gateway runs for real: its app from ``create_app(settings)`` (clients built and opened in
its lifespan) on uvicorn in a background thread, over the real embedding and reranking services
(MiniLM on the CPU, in a thread of their own) and an OpenAI-compatible LLM stand-in for chat.
The documents service is stopped on purpose (its target is a closed port), so the documents
upload may answer 502/503/504; any other operation answering 5xx, or anything answering a 5xx
outside those three, is a failure. Requests carry a configured API key, so they reach the
handlers. Schemathesis generates valid and invalid requests, per operation, until at least
``--requests`` were sent.

Then: a missing or wrong key answers 401, and a second gateway with ``rate_limit_rps=1,
rate_limit_burst=2`` answers a burst with 429 and ``Retry-After``.

Prints a table of operation x status counts; exits 0 when all holds, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import schemathesis  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from tests.support.llm_hosts import LLMHostStandIn  # noqa: E402
from tests.support.threaded_server import ThreadedServer, free_port  # noqa: E402
from tools.fuzzing import Tally, fuzz, fuzz_arguments, print_table, verdict  # noqa: E402

from servicegrid.gateway import create_app  # noqa: E402
from servicegrid.settings import Settings, load_settings  # noqa: E402

KEY = "fuzz-key"
ORCHESTRATOR_PREFIXES = ("/orchestrate", "/services")
STOPPED_UPSTREAM_STATUSES = {502, 503, 504}
# operation label -> the upstream it needs, for those whose upstream is stopped on purpose
STOPPED_UPSTREAMS = {"POST /v1/documents": "documents (DOCLING_VLM_SERVICE_URL: a closed port)"}


class ModelServices:
    """The embedding and reranking services on a loop in a background thread."""

    def __init__(self) -> None:
        from servicegrid.services.embedding.app import build_embedding_service
        from servicegrid.services.reranking.app import build_reranking_service

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = load_settings(
            device="cpu", max_items_per_request=1_000, max_text_chars=50_000
        )
        self.embedding = self._start(build_embedding_service)
        self.reranking = self._start(build_reranking_service)

    def _run(self, coroutine: Awaitable[Any], timeout: float = 300) -> Any:
        async def wrapped() -> Any:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def _start(self, build: Callable[..., Awaitable[Any]]) -> Any:
        async def start() -> Any:
            built = await build(self.settings, address="127.0.0.1:0", registry=CollectorRegistry())
            await built.running.server.start()
            await built.running.health.set_all(True)
            return built

        return self._run(start())

    def close(self) -> None:
        async def stop(built: Any) -> None:
            await built.running.server.stop(0.5)
            await built.aclose()

        for built in (self.embedding, self.reranking):
            self._run(stop(built), 60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@contextmanager
def model_services() -> Iterator[ModelServices]:
    services = ModelServices()
    try:
        yield services
    finally:
        services.close()


def gateway_settings(
    services: ModelServices, llm: LLMHostStandIn, database: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "embedding_service_url": f"127.0.0.1:{services.embedding.running.port}",
        "reranking_service_url": f"127.0.0.1:{services.reranking.running.port}",
        "docling_vlm_service_url": f"127.0.0.1:{free_port()}",  # stopped on purpose
        "llm_urls": (llm.url,),
        "api_keys": (KEY,),
        "database_url": f"sqlite+aiosqlite:///{database}",
        "max_items_per_request": 32,
        "max_text_chars": 2_000,
        # a stopped upstream answers fast: few, short retries
        "max_retry_attempts": 2,
        "retry_base_delay": 0.05,
        "retry_max_delay": 0.1,
    }
    return load_settings(**{**values, **overrides})


def stopped_upstream(operation: str, status: int) -> bool:
    """A 502/503/504 of the operation whose upstream is stopped on purpose is expected."""
    return operation in STOPPED_UPSTREAMS and status in STOPPED_UPSTREAM_STATUSES


@contextmanager
def gateway(settings: Settings, name: str) -> Iterator[str]:
    """The gateway built from ``settings`` on uvicorn, its lifespan running; yields its URL."""
    server = ThreadedServer(
        create_app(settings),
        name=name,
        lifespan="on",
        log_level="error",  # a 500 prints its traceback
        graceful_shutdown=5,
        start_timeout=60,
        stop_timeout=30,
    )
    with server:
        yield server.url


def check_keys(url: str) -> list[str]:
    """A missing or wrong key answers 401 on every keyed path; probes need none."""
    problems = []
    keyed = [("GET", "/v1/models", None), ("POST", "/v1/embeddings", {"input": "hi"})]
    keyed += [("POST", "/embed", {"inputs": "hi"}), ("GET", "/v1/api/status/services", None)]
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path, body in keyed:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                answer = client.request(method, path, json=body, headers=headers)
                if answer.status_code != 401:
                    problems.append(f"{method} {path} with {headers}: {answer.status_code}")
            answer = client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {KEY}"}
            )
            if answer.status_code != 200:
                problems.append(f"{method} {path} with the key: {answer.status_code}")
        for path in ("/health", "/ready", "/metrics"):
            if (status := client.get(path).status_code) != 200:
                problems.append(f"GET {path} without a key: {status}")
    return problems


def check_stopped_upstream(url: str) -> list[str]:
    """A PDF upload while the documents service is down: 503 with Retry-After (or 504)."""
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        answer = client.post("/v1/documents", files={"file": ("a.pdf", pdf, "application/pdf")})
    print(f"POST /v1/documents with a PDF, documents stopped: {answer.status_code}")
    if answer.status_code == 504 or (answer.status_code == 503 and "retry-after" in answer.headers):
        return []
    return [f"POST /v1/documents, documents stopped: {answer.status_code} {answer.text[:200]}"]


def check_rate_limit(url: str) -> list[str]:
    """A burst of 10 over ``rate_limit_rps=1, rate_limit_burst=2``: some 429 with Retry-After."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        answers = [client.get("/v1/models") for _ in range(10)]
    statuses = Counter(answer.status_code for answer in answers)
    limited = [answer for answer in answers if answer.status_code == 429]
    problems = []
    if not limited or statuses[200] < 1 or set(statuses) - {200, 429}:
        problems.append(f"a burst of 10 over rps=1, burst=2 answered {dict(statuses)}")
    for answer in limited:
        if "retry-after" not in answer.headers:
            problems.append(f"429 without Retry-After: {answer.text[:200]}")
            break
    return problems


def main(argv: list[str] | None = None) -> int:
    args = fuzz_arguments(argv, doc=__doc__, requests=5_000, requests_help="at least this many")

    started = time.monotonic()
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        model_services() as services,
        LLMHostStandIn("llm") as llm,
    ):
        settings = gateway_settings(services, llm, Path(scratch) / "jobs.db")
        with gateway(settings, "the gateway") as url:
            document = httpx.get(f"{url}/openapi.json").json()
            # the orchestrator's routes need seed 002's services: tools/fuzz_orchestrator.py
            # fuzzes them with those running
            document["paths"] = {
                path: item
                for path, item in document["paths"].items()
                if not path.startswith(ORCHESTRATOR_PREFIXES)
            }
            schema = schemathesis.openapi.from_dict(document)
            tally = fuzz(
                url,
                schema,
                requests_wanted=args.requests,
                seed=args.seed,
                headers={"Authorization": f"Bearer {KEY}"},
                tally=Tally(allowed=stopped_upstream),
            )
            problems += [f"key: {problem}" for problem in check_keys(url)]
            problems += check_stopped_upstream(url)
            if httpx.get(f"{url}/ready").status_code != 200:
                problems.append("the gateway is not ready after the fuzzing")
        limited = gateway_settings(
            services, llm, Path(scratch) / "limited.db", rate_limit_rps=1, rate_limit_burst=2
        )
        with gateway(limited, "the rate-limited gateway") as url:
            problems += [f"rate limit: {problem}" for problem in check_rate_limit(url)]

    elapsed = time.monotonic() - started
    print_table(tally)
    print(f"\n{tally.total} generated requests in {elapsed:.0f} s")
    stopped = {
        label: {s: n for s, n in tally.counts[label].items() if s >= 500}
        for label in STOPPED_UPSTREAMS
    }
    for label, reason in STOPPED_UPSTREAMS.items():
        print(f"allowed: {label} 5xx {stopped[label] or 'none'}, upstream stopped: {reason}")
    return verdict(tally, requests_wanted=args.requests, problems=problems)


if __name__ == "__main__":
    sys.exit(main())
