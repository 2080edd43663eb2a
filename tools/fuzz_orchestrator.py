"""Fuzz the gateway's ``/orchestrate`` and ``/services`` operations with schemathesis: no 5xx
but a stopped upstream's, and every service healthy after (issue acceptance 4).

    .venv/bin/python tools/fuzz_orchestrator.py [--requests 2000] [--seed 0]

Everything those operations reach runs for real: seed 002's users, questions and API gateway
services, each a process on SQLite in a scratch folder; the embedding and reranking services
(MiniLM on the CPU, in a thread); an OpenAI-compatible LLM stand-in; and the gateway app from
``create_app(settings)`` on uvicorn in a thread, its Qdrant index in local mode in the scratch
folder. The gateway finds seed 002's services through the environment, as a deployment does.
The documents service is stopped on purpose (its target is a closed port), so
``POST /orchestrate/index-documents`` may answer 502/503/504; any other 5xx is a failure.
``POST /services/gateway/proxy`` puts the proxied answer's status in its JSON body, so a 5xx
from it is the gateway's own failure too.

user-123's questions are indexed first, so generated queries find something. Schemathesis
generates valid and invalid requests per operation until at least ``--requests`` were sent;
then ``GET /orchestrate/health`` (over REST and gRPC) must answer 200 with every service but
the stopped one healthy, and seed 002's processes must still run.

Prints a table of operation x status counts; exits 0 when all holds, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import schemathesis  # noqa: E402
from tests.support.app_processes import APPS, AppProcesses  # noqa: E402
from tests.support.llm_hosts import LLMHostStandIn  # noqa: E402
from tools.fuzz_gateway import (  # noqa: E402
    KEY,
    STOPPED_UPSTREAM_STATUSES,
    gateway,
    gateway_settings,
    model_services,
)
from tools.fuzzing import Tally, fuzz, fuzz_arguments, print_table, verdict  # noqa: E402

FUZZED_PREFIXES = ("/orchestrate", "/services")
DOCUMENTS = "POST /orchestrate/index-documents"
STOPPED = "docling-vlm-service"  # the documents service, stopped on purpose
SEEDED_USER = "user-123"
HEADERS = {"Authorization": f"Bearer {KEY}"}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# Values that exist, offered beside what the schema allows: random names and ids reach only
# the "not found" answers, these reach the services' stores and the API gateway's proxying.
KNOWN = {
    "user_id": ("user-123", "user-456", "user-789"),
    "service": ("user-service", "question-service", "api-gateway", "users", "questions"),
    "path": (
        "/health",
        "/users",
        "/users/user-123",
        "/questions",
        "/questions/q-001",
        "/questions/search",
        "/questions/changes",
    ),
    "file": (PDF.decode(),),
}
KNOWN["service_name"] = (*KNOWN["service"], STOPPED)


def stopped_upstream(operation: str, status: int) -> bool:
    """A 502/503/504 of the documents upload (its service is stopped on purpose) is expected."""
    return operation == DOCUMENTS and status in STOPPED_UPSTREAM_STATUSES


def with_known(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or one of the known values of a field called ``name``."""
    if name not in KNOWN:
        return schema
    known = list(KNOWN[name])
    # disjoint branches: the generator's canonical form would fold a known value into the other
    widened: dict[str, Any] = {
        "anyOf": [{"type": "string", "enum": known}, {**schema, "not": {"enum": known}}]
    }
    if name == "file":
        # schemathesis sends a form field as a file part only when its own schema says so; an
        # optional upload (``anyOf: [file, null]``) would go as a plain field and never be read
        widened["contentMediaType"] = "application/octet-stream"
    return widened


def orchestrator_schema(url: str) -> Any:
    """The gateway's OpenAPI, only the ``/orchestrate`` and ``/services`` operations kept, and
    the fields of :data:`KNOWN` offering their known values too."""
    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path.startswith(FUZZED_PREFIXES)
    }
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = with_known(parameter["name"], parameter["schema"])
    for component in document["components"]["schemas"].values():
        properties = component.get("properties", {})
        for name, schema in properties.items():
            properties[name] = with_known(name, schema)
    return schemathesis.openapi.from_dict(document)


def index_seeded_user(url: str) -> list[str]:
    """Index user-123's questions, so that queries find something."""
    answer = httpx.post(
        f"{url}/orchestrate/index-questions/{SEEDED_USER}", headers=HEADERS, timeout=120
    )
    print(f"POST /orchestrate/index-questions/{SEEDED_USER}: {answer.status_code} {answer.text}")
    if answer.status_code != 200:
        return [f"indexing {SEEDED_USER}'s questions: {answer.status_code} {answer.text[:300]}"]
    return []


def check_stopped_documents(url: str) -> list[str]:
    """A real PDF while the documents service is down: 503 with Retry-After (or 504)."""
    files = {"file": ("a.pdf", PDF, "application/pdf")}
    answer = httpx.post(
        f"{url}/orchestrate/index-documents", files=files, headers=HEADERS, timeout=60
    )
    print(f"{DOCUMENTS} with a PDF, documents stopped: {answer.status_code}")
    if answer.status_code == 504 or (answer.status_code == 503 and "retry-after" in answer.headers):
        return []
    return [f"{DOCUMENTS}, documents stopped: {answer.status_code} {answer.text[:200]}"]


def check_health(url: str) -> list[str]:
    """``/orchestrate/health`` answers 200, every service healthy but the stopped one."""
    problems = []
    for use_grpc in (False, True):
        answer = httpx.get(
            f"{url}/orchestrate/health",
            params={"use_grpc": use_grpc},
            headers=HEADERS,
            timeout=60,
        )
        protocol = "grpc" if use_grpc else "rest"
        if answer.status_code != 200:
            problems.append(f"health ({protocol}): {answer.status_code} {answer.text[:300]}")
            continue
        services = answer.json()["services"]
        print(
            f"health ({protocol}): " + ", ".join(f"{n} {e['status']}" for n, e in services.items())
        )
        problems += [
            f"health ({protocol}): {name} is {entry['status']}: {entry.get('error', '')}"
            for name, entry in services.items()
            if name != STOPPED and entry["status"] != "healthy"
        ]
    return problems


def main(argv: list[str] | None = None) -> int:
    args = fuzz_arguments(argv, doc=__doc__, requests=2_000, requests_help="at least this many")

    started = time.monotonic()
    problems: list[str] = []
    tally = Tally(allowed=stopped_upstream)
    with (
        tempfile.TemporaryDirectory() as scratch,
        AppProcesses(Path(scratch)) as apps,
        model_services() as services,
        LLMHostStandIn("llm") as llm,
    ):
        # the gateway's discovery reads where seed 002's services are from the environment
        os.environ.update(apps.env)
        settings = gateway_settings(
            services, llm, Path(scratch) / "jobs.db", qdrant_path=f"{scratch}/qdrant"
        )
        with gateway(settings, "the gateway") as url:
            problems += index_seeded_user(url)
            fuzz(
                url,
                orchestrator_schema(url),
                requests_wanted=args.requests,
                seed=args.seed,
                headers=HEADERS,
                tally=tally,
            )
            problems += check_stopped_documents(url)
            problems += check_health(url)
        for name in APPS:
            if not apps.processes[name].running():
                problems.append(f"{name} exited during the fuzzing:\n{apps.processes[name].tail()}")

    elapsed = time.monotonic() - started
    print_table(tally)
    print(f"\n{tally.total} generated requests in {elapsed:.0f} s")
    allowed = {s: n for s, n in tally.counts[DOCUMENTS].items() if s >= 500}
    print(f"allowed: {DOCUMENTS} 5xx {allowed or 'none'}, upstream stopped: documents")
    return verdict(tally, requests_wanted=args.requests, problems=problems)


if __name__ == "__main__":
    sys.exit(main())
