"""Fuzz every operation of the integration service's OpenAPI schema with schemathesis.

The app runs for real: uvicorn on a free loopback port in a background thread, on a SQLite file,
with DBOS running executions in its lifespan. Before fuzzing, services (pointing at a local stub
that answers at once, see :mod:`tests.support.action_services`), a workflow and two executions
are created, and generated path parameters are often swapped for their ids and names, so that
the fuzzer reaches past the 404s. Every generated request must get an answer below 500, the
server must still be healthy at the end, and at least :data:`MIN_REQUESTS` requests must have
been sent (``test_fuzzing_sent_enough_requests``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from servicegrid.integration import create_app
from tests.support.action_services import ACTION_SCHEMAS, ActionServices
from tests.support.schema_fuzz import fuzz_settings
from tests.support.threaded_server import ThreadedServer

MIN_REQUESTS = 5_000
EXAMPLES_PER_OPERATION = 250  # about 6,300 requests in all, in about 2.5 minutes on 2 cores

# DBOS's background threads use the global `random` module while Hypothesis generates a case,
# which Hypothesis takes for a strategy using it: not so here.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

# The OpenAPI document the app serves (building the app runs nothing: no database, no DBOS);
# ``test_the_fuzzed_schema_is_the_served_one`` checks it against the live server's.
OPENAPI = create_app("sqlite+aiosqlite:///never-opened.db").openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
OPERATIONS = sum(len(methods) for methods in OPENAPI["paths"].values())


# name -> (action, input schema, output schema); the stub answers each action accordingly
SERVICES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "text-extraction": ACTION_SCHEMAS["text-extraction"],
    "sentiment-analysis": ACTION_SCHEMAS["sentiment-analysis"],
    "echo": ("echo", {}, {"type": "object"}),
}
WORKFLOW = "document-sentiment"
STEPS = [
    {"id": "extract", "service": "text-extraction", "action": "extract", "next": "analyze"},
    {"id": "analyze", "service": "sentiment-analysis", "action": "analyze"},
]


@dataclass
class Known:
    """Ids and names that exist on the server, swapped into generated path parameters."""

    service_id: list[str] = field(default_factory=lambda: list(SERVICES))
    workflow_id: list[str] = field(default_factory=lambda: [WORKFLOW])
    execution_id: list[str] = field(default_factory=list)
    action: list[str] = field(default_factory=lambda: [spec[0] for spec in SERVICES.values()])


KNOWN = Known()


@dataclass
class Tally:
    """What the fuzzer sent: requests per operation and answers per status code."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, operation: str, status: int) -> None:
        with self.lock:
            self.requests[operation] += 1
            self.statuses[status] += 1

    @property
    def total(self) -> int:
        return sum(self.requests.values())


TALLY = Tally()


def _known_or(name: str, value: Any) -> st.SearchStrategy[Any]:
    choices = getattr(KNOWN, name, None)
    if choices is None:
        return st.just(value)
    # deferred: execution ids exist only once the server runs, after collection
    return st.one_of(st.just(value), st.deferred(lambda: st.sampled_from(choices or [value])))


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    return st.fixed_dictionaries(
        {name: _known_or(name, value) for name, value in path_parameters.items()}
    )


def _fuzzed_server(database_url: str) -> ThreadedServer:
    """The integration app on uvicorn in a background thread, with its lifespan running."""
    return ThreadedServer(
        create_app(database_url, health_interval=3600.0),
        name="the integration service",
        lifespan="on",
        log_level="error",  # a 500 prints its traceback
        graceful_shutdown=5,
        start_timeout=60,
        stop_timeout=30,
    )


def _seed(client: httpx.Client, stub: ActionServices) -> None:
    """Register the known services and workflow; those already there are left alone."""
    for name, (action, input_schema, output_schema) in SERVICES.items():
        body = {
            "name": name,
            "endpoint": stub.endpoint(name),
            "actions": [
                {"name": action, "input_schema": input_schema, "output_schema": output_schema}
            ],
        }
        response = client.post("/api/services", json=body)
        if response.status_code == 409:
            response = client.put(f"/api/services/{name}", json=body)
        assert response.status_code in (200, 201), response.text
    body = {"name": WORKFLOW, "steps": STEPS, "status": "ACTIVE"}
    response = client.post("/api/workflows", json=body)
    if response.status_code == 409:
        response = client.put(f"/api/workflows/{WORKFLOW}", json=body)
    assert response.status_code in (200, 201), response.text


def _execute(client: httpx.Client, input_data: dict[str, Any]) -> str:
    response = client.post(f"/api/workflows/{WORKFLOW}/execute", json={"input_data": input_data})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    for _ in range(500):
        if client.get(f"/api/executions/{execution_id}").json()["status"] not in (
            "PENDING",
            "RUNNING",
        ):
            return execution_id
        time.sleep(0.02)
    raise AssertionError(f"execution {execution_id} did not finish")


@dataclass
class Fuzzed:
    """The running server, a client for setting things up, and the session the fuzzer sends on."""

    url: str
    client: httpx.Client
    stub: ActionServices
    session: requests.Session

    def reseed(self) -> None:
        _seed(self.client, self.stub)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    database = tmp_path_factory.mktemp("fuzz") / "integration.db"
    with ActionServices() as stub:
        server = _fuzzed_server(f"sqlite+aiosqlite:///{database}")
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                _seed(client, stub)
                KNOWN.service_id.extend(
                    client.get(f"/api/services/{name}").json()["id"] for name in SERVICES
                )
                KNOWN.workflow_id.append(client.get(f"/api/workflows/{WORKFLOW}").json()["id"])
                KNOWN.execution_id.append(_execute(client, {"document_url": "https://x.test/"}))
                KNOWN.execution_id.append(_execute(client, {"wrong": 1}))  # FAILED: resumable
                with requests.Session() as session:
                    yield Fuzzed(server.url, client, stub, session)
        finally:
            server.stop()


MUTATIONS = {"PUT", "PATCH", "DELETE"}


@schema.parametrize()
@fuzz_settings(EXAMPLES_PER_OPERATION)
def test_no_request_gets_a_server_error(case: schemathesis.Case, fuzzed: Fuzzed) -> None:
    response = case.call(base_url=fuzzed.url, session=fuzzed.session, timeout=30)
    TALLY.add(case.operation.label, response.status_code)
    case.validate_response(response, checks=[not_a_server_error])
    if case.method.upper() in MUTATIONS and response.status_code < 300:
        fuzzed.reseed()  # put back what the fuzzer changed or removed, so later cases find it


def test_the_fuzzed_schema_is_the_served_one(fuzzed: Fuzzed) -> None:
    assert fuzzed.client.get("/openapi.json").json() == OPENAPI


def test_fuzzing_sent_enough_requests(fuzzed: Fuzzed) -> None:
    if len(TALLY.requests) < OPERATIONS:
        pytest.skip(f"only {len(TALLY.requests)} of {OPERATIONS} operations were fuzzed")
    print(f"\nfuzzing sent {TALLY.total} requests: {dict(sorted(TALLY.statuses.items()))}")
    assert all(status < 500 for status in TALLY.statuses)
    assert TALLY.total >= MIN_REQUESTS, TALLY.requests
    health = fuzzed.client.get("/api/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "healthy"
