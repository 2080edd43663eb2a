"""``servicegrid executions list|show|cancel|resume`` against the integration service on uvicorn.

The service runs in a background thread on a free loopback port, on a SQLite file under
``tmp_path``; workflow steps call the real action services of :mod:`tests.support.action_services`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from servicegrid.cli import app
from servicegrid.cli._executions import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_UNREACHABLE
from servicegrid.integration import create_app
from tests.integration.conftest import make_service
from tests.support.action_services import ACTION_SCHEMAS, ActionServices
from tests.support.fixtures import started_per_module
from tests.support.threaded_server import ThreadedServer, free_port

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
STEPS = [
    {"id": "extract", "service": "text-extraction", "action": "extract", "next": "analyze"},
    {"id": "analyze", "service": "sentiment-analysis", "action": "analyze", "next": None},
]
SLOW = "/text-extraction/api/extract"


services = started_per_module(ActionServices)


@pytest.fixture
def api_url(tmp_path: Path, services: ActionServices) -> Iterator[str]:
    """The service's API URL, with the action services registered."""
    services.log.reset()
    app_ = create_app(f"sqlite+aiosqlite:///{tmp_path}/i.db", engine_poll_interval=0.05)
    server = ThreadedServer(
        app_, name="integration", lifespan="on", start_timeout=20, stop_timeout=10
    )
    with server as running:
        url = f"{running.url}/api"
        with httpx.Client(base_url=url, timeout=10) as http:
            for name, (action, input_schema, output_schema) in ACTION_SCHEMAS.items():
                body = make_service(
                    name,
                    endpoint=services.endpoint(name),
                    actions=[
                        {
                            "name": action,
                            "input_schema": input_schema,
                            "output_schema": output_schema,
                        }
                    ],
                )
                assert http.post("/services", json=body).status_code == 201
        yield url


def _workflow(url: str, name: str) -> str:
    body = {"name": name, "steps": STEPS}
    response = httpx.post(f"{url}/workflows", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _execute(url: str, workflow_id: str) -> str:
    body = {"input_data": {"document_url": "https://x.test/a.pdf"}}
    response = httpx.post(f"{url}/workflows/{workflow_id}/execute", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait(url: str, execution_id: str, statuses: set[str]) -> dict[str, Any]:
    for _ in range(1000):
        body: dict[str, Any] = httpx.get(f"{url}/executions/{execution_id}", timeout=10).json()
        if body["status"] in statuses:
            return body
        time.sleep(0.02)
    raise AssertionError(f"execution {execution_id} never reached {statuses}: {body}")


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["executions", *args])


def test_list_show_and_their_json(api_url: str) -> None:
    first = _workflow(api_url, "first")
    second = _workflow(api_url, "second")
    ids = [_execute(api_url, first), _execute(api_url, first), _execute(api_url, second)]
    for execution_id in ids:
        _wait(api_url, execution_id, TERMINAL)

    every = _run("list", "--json", "--url", api_url)
    assert every.exit_code == 0, every.output
    page = json.loads(every.output)
    assert page["total"] == 3
    assert {item["id"] for item in page["items"]} == set(ids)

    paged = json.loads(
        _run("list", "--json", "--per-page", "2", "--page", "2", "--url", api_url).output
    )
    assert (paged["total"], len(paged["items"]), paged["pages"]) == (3, 1, 2)

    one = json.loads(_run("list", "--json", "--workflow", "first", "--url", api_url).output)
    assert {item["id"] for item in one["items"]} == set(ids[:2])
    failed = json.loads(_run("list", "--json", "--status", "failed", "--url", api_url).output)
    assert failed["total"] == 0

    table = _run("list", "--url", api_url)
    assert table.exit_code == 0, table.output
    assert ids[2] in table.output
    assert "COMPLETED" in table.output

    shown = _run("show", ids[0], "--json", "--url", api_url)
    assert shown.exit_code == 0, shown.output
    execution = json.loads(shown.output)
    assert execution["status"] == "COMPLETED"
    assert [step["id"] for step in execution["steps"]] == ["extract", "analyze"]

    readable = _run("show", ids[0], "--url", api_url)
    assert readable.exit_code == 0, readable.output
    assert "sentiment-analysis.analyze" in readable.output


def test_cancel_then_resume(api_url: str, services: ActionServices) -> None:
    workflow = _workflow(api_url, "slow")
    services.control(delay={SLOW: 2.0})
    execution_id = _execute(api_url, workflow)
    _wait(api_url, execution_id, {"RUNNING"})

    cancelled = _run("cancel", execution_id, "--json", "--url", api_url)
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.output)["status"] == "CANCELLED"

    services.control(delay={SLOW: 0.0})
    resumed = _run("resume", execution_id, "--url", api_url)
    assert resumed.exit_code == 0, resumed.output
    assert _wait(api_url, execution_id, TERMINAL)["status"] == "COMPLETED"


def test_a_finished_execution_can_be_neither_cancelled_nor_resumed(api_url: str) -> None:
    execution_id = _execute(api_url, _workflow(api_url, "quick"))
    _wait(api_url, execution_id, TERMINAL)

    cancel = _run("cancel", execution_id, "--url", api_url)
    assert cancel.exit_code == EXIT_CONFLICT
    lines = cancel.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"execution {execution_id} is already COMPLETED")

    resume = _run("resume", execution_id, "--url", api_url)
    assert resume.exit_code == EXIT_CONFLICT
    assert "only FAILED or CANCELLED" in resume.output


def test_an_unknown_execution_is_not_found(api_url: str) -> None:
    result = _run("show", "no-such-execution", "--url", api_url)
    assert result.exit_code == EXIT_NOT_FOUND
    assert result.output.startswith("error: ")
    assert "no-such-execution" in result.output
    assert len(result.output.strip().splitlines()) == 1

    unknown_workflow = _run("list", "--workflow", "nothing", "--url", api_url)
    assert unknown_workflow.exit_code == EXIT_NOT_FOUND


def test_a_service_that_is_down_is_reported_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    result = _run("show", "some-id", "--url", url)
    assert result.exit_code == EXIT_UNREACHABLE
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: integration service at {url} is not reachable")


def test_the_default_url_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("INTEGRATION_SERVICE_URL", url)
    result = _run("list")
    assert result.exit_code == EXIT_UNREACHABLE
    assert url in result.output
