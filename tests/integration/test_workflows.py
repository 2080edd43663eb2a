"""Workflows and executions against the real app and real HTTP services implementing the actions."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.integration.conftest import make_service
from tests.support.action_services import ACTION_SCHEMAS, ActionServices, object_schema

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


async def register_all(client: httpx.AsyncClient, services: ActionServices) -> None:
    for name, (action, input_schema, output_schema) in ACTION_SCHEMAS.items():
        body = make_service(
            name,
            endpoint=services.endpoint(name),
            actions=[
                {"name": action, "input_schema": input_schema, "output_schema": output_schema}
            ],
        )
        response = await client.post("/api/services", json=body)
        assert response.status_code == 201, response.text


SEED_STEPS = [
    {
        "id": "extract-text",
        "service": "text-extraction",
        "action": "extract",
        "next": "analyze-sentiment",
    },
    {
        "id": "analyze-sentiment",
        "service": "sentiment-analysis",
        "action": "analyze",
        "next": None,
    },
]


async def create_workflow(
    client: httpx.AsyncClient, steps: list[dict[str, Any]], name: str = "document-sentiment"
) -> dict[str, Any]:
    response = await client.post(
        "/api/workflows",
        json={"name": name, "description": "test", "steps": steps, "metadata": {"v": 1}},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_done(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    for _ in range(1000):
        response = await client.get(f"/api/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in TERMINAL:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution {execution_id} did not finish: {body}")


async def execute(
    client: httpx.AsyncClient, workflow_id: str, input_data: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/workflows/{workflow_id}/execute",
        json={"input_data": input_data, "context": {"request_id": "req-1"}},
        **kw,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "PENDING"
    return body


async def test_seed_workflow_runs_to_completion_with_every_step_recorded(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    workflow = await create_workflow(client, SEED_STEPS)
    started = await execute(client, workflow["id"], {"document_url": "https://x.test/a.pdf"})
    done = await wait_done(client, started["id"])
    assert done["status"] == "COMPLETED", done
    assert done["output"] == {"sentiment": "positive", "score": 0.8}
    assert [step["id"] for step in done["steps"]] == ["extract-text", "analyze-sentiment"]
    first, second = done["steps"]
    assert first["input"] == {"document_url": "https://x.test/a.pdf"}
    assert second["input"] == first["output"]
    assert all(step["status"] == "COMPLETED" and step["attempts"] == 1 for step in done["steps"])
    assert all(step["duration_ms"] >= 0 for step in done["steps"])
    keys = [call["key"] for call in services.calls()]
    assert keys == [f"{started['id']}:extract-text", f"{started['id']}:analyze-sentiment"]


async def test_executions_list_filters_and_pages(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    workflow = await create_workflow(client, SEED_STEPS)
    ids = [
        (await execute(client, workflow["id"], {"document_url": f"https://x.test/{n}"}))["id"]
        for n in range(3)
    ]
    for execution_id in ids:
        await wait_done(client, execution_id)
    page = (
        await client.get(
            f"/api/workflows/{workflow['id']}/executions",
            params={"status": "COMPLETED", "page": 2, "per_page": 2},
        )
    ).json()
    assert (page["total"], page["pages"], page["page"], len(page["items"])) == (3, 2, 2, 1)
    none = (
        await client.get(f"/api/workflows/{workflow['id']}/executions", params={"status": "FAILED"})
    ).json()
    assert none["total"] == 0


async def test_an_idempotency_key_returns_the_same_execution(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    workflow = await create_workflow(client, SEED_STEPS)
    headers = {"Idempotency-Key": "once-only"}
    first = await execute(
        client, workflow["id"], {"document_url": "https://x.test/"}, headers=headers
    )
    second = await client.post(
        f"/api/workflows/{workflow['id']}/execute",
        json={"input_data": {"document_url": "https://x.test/"}},
        headers=headers,
    )
    assert second.json()["id"] == first["id"]
    await wait_done(client, first["id"])
    assert len(services.calls("extract")) == 1


async def test_switch_follows_the_output_field(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    steps = [
        {"id": "extract", "service": "text-extraction", "action": "extract", "next": "classify"},
        {
            "id": "classify",
            "service": "sentiment-analysis",
            "action": "analyze",
            "next": {"on": "sentiment", "cases": {"negative": "escalate"}, "default": "summarize"},
        },
        {
            "id": "escalate",
            "service": "translation",
            "action": "translate",
            "input": {"text": "ESCALATE ${steps.extract.output.text}", "language": "en"},
        },
        {
            "id": "summarize",
            "service": "text-summarization",
            "action": "summarize",
            "input": {"text": "${steps.extract.output.text}"},
        },
    ]
    workflow = await create_workflow(client, steps)
    done = await wait_done(
        client, (await execute(client, workflow["id"], {"document_url": "https://x.test/"}))["id"]
    )
    assert done["status"] == "COMPLETED", done
    assert [step["id"] for step in done["steps"]] == ["extract", "classify", "summarize"]
    assert done["output"] == {"summary": "Text of https://x.test/: a great product"}


async def test_fork_runs_branches_and_joins_before_next(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    steps = [
        {"id": "extract", "service": "text-extraction", "action": "extract", "next": "fan-out"},
        {"id": "fan-out", "fork": ["sentiment", "summary"], "next": "translate"},
        {"id": "sentiment", "service": "sentiment-analysis", "action": "analyze"},
        {"id": "summary", "service": "text-summarization", "action": "summarize"},
        {
            "id": "translate",
            "service": "translation",
            "action": "translate",
            "input": {
                "text": "${steps.summary.output.summary} (${steps.sentiment.output.sentiment})"
            },
        },
    ]
    workflow = await create_workflow(client, steps)
    done = await wait_done(
        client, (await execute(client, workflow["id"], {"document_url": "https://x.test/"}))["id"]
    )
    assert done["status"] == "COMPLETED", done
    by_id = {step["id"]: step for step in done["steps"]}
    assert set(by_id) == {"extract", "fan-out", "sentiment", "summary", "translate"}
    assert by_id["fan-out"]["output"] == {
        "sentiment": {"sentiment": "positive", "score": 0.8},
        "summary": {"summary": "Text of https://x.test/: a great product"},
    }
    assert done["output"] == {
        "translation": "[fr] Text of https://x.test/: a great product (positive)"
    }


async def test_transient_failures_are_retried_per_step_with_the_same_key(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    steps = [dict(SEED_STEPS[0]), dict(SEED_STEPS[1])]
    steps[1]["retry"] = {"max_attempts": 4, "initial_delay_seconds": 0, "max_delay_seconds": 0}
    workflow = await create_workflow(client, steps)
    services.control(fail={"/sentiment-analysis/api/analyze": 2})
    done = await wait_done(
        client, (await execute(client, workflow["id"], {"document_url": "https://x.test/"}))["id"]
    )
    assert done["status"] == "COMPLETED", done
    assert done["steps"][1]["attempts"] == 3
    assert len({call["key"] for call in services.calls("analyze")}) == 1


async def test_a_failed_execution_says_why_and_resumes_from_the_failed_step(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    steps = [dict(SEED_STEPS[0]), dict(SEED_STEPS[1])]
    steps[1]["retry"] = {"max_attempts": 2, "initial_delay_seconds": 0, "max_delay_seconds": 0}
    workflow = await create_workflow(client, steps)
    services.control(fail={"/sentiment-analysis/api/analyze": 2})
    started = await execute(client, workflow["id"], {"document_url": "https://x.test/"})
    failed = await wait_done(client, started["id"])
    assert failed["status"] == "FAILED"
    assert failed["error"]["step"] == "analyze-sentiment"
    assert failed["error"]["type"] == "ServiceUnavailableError"
    assert failed["steps"][1]["attempts"] == 2
    resumed = await client.post(f"/api/executions/{started['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    done = await wait_done(client, started["id"])
    assert done["status"] == "COMPLETED", done
    assert done["output"]["sentiment"] == "positive"
    assert len(services.calls("extract")) == 1  # the completed step did not run again
    again = await client.post(f"/api/executions/{started['id']}/resume")
    assert again.status_code == 409


async def test_a_running_execution_can_be_cancelled(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    workflow = await create_workflow(client, SEED_STEPS)
    services.control(delay={"/text-extraction/api/extract": 1.0})
    started = await execute(client, workflow["id"], {"document_url": "https://x.test/"})
    cancelled = await client.post(f"/api/executions/{started['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    await asyncio.sleep(1.3)
    done = await wait_done(client, started["id"])
    assert done["status"] == "CANCELLED"
    assert services.calls("analyze") == []
    again = await client.post(f"/api/executions/{started['id']}/cancel")
    assert again.status_code == 409


async def test_output_that_breaks_the_schema_fails_the_step(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    body = make_service(
        "strict",
        endpoint=services.endpoint("strict"),
        actions=[
            {
                "name": "run",
                "input_schema": {"type": "object"},
                "output_schema": object_schema({"answer": "string"}, ["answer"]),
            }
        ],
    )
    assert (await client.post("/api/services", json=body)).status_code == 201
    workflow = await create_workflow(client, [{"id": "only", "service": "strict", "action": "run"}])
    done = await wait_done(client, (await execute(client, workflow["id"], {"a": 1}))["id"])
    assert done["status"] == "FAILED"
    assert done["error"]["type"] == "ActionOutputInvalid"
    assert "answer" in done["error"]["message"]


@pytest.mark.parametrize(
    ("steps", "loc", "fragment"),
    [
        (
            [{"id": "a", "service": "text-extraction", "action": "extract", "next": "nowhere"}],
            ["body", "steps", 0, "next"],
            "no step has the id 'nowhere'",
        ),
        (
            [
                {"id": "a", "service": "text-extraction", "action": "extract", "next": "b"},
                {"id": "b", "service": "text-extraction", "action": "extract", "next": "c"},
                {"id": "c", "service": "text-extraction", "action": "extract", "next": "b"},
            ],
            ["body", "steps", 2, "next"],
            "cycle",
        ),
        (
            [
                {"id": "a", "service": "text-extraction", "action": "extract"},
                {"id": "a", "service": "text-extraction", "action": "extract"},
            ],
            ["body", "steps", 1, "id"],
            "repeated",
        ),
        (
            [{"id": "a", "service": "no-such-service", "action": "extract"}],
            ["body", "steps", 0, "service"],
            "no registered service",
        ),
        (
            [{"id": "a", "service": "text-extraction", "action": "no-such-action"}],
            ["body", "steps", 0, "action"],
            "has no action",
        ),
        (
            [
                {"id": "a", "service": "text-extraction", "action": "extract"},
                {"id": "b", "service": "text-extraction", "action": "extract"},
            ],
            ["body", "steps", 1, "id"],
            "cannot be reached",
        ),
        (
            [
                {"id": "f", "fork": ["x", "y"], "next": "z"},
                {"id": "x", "service": "text-extraction", "action": "extract", "next": "z"},
                {"id": "y", "service": "text-extraction", "action": "extract"},
                {"id": "z", "service": "text-extraction", "action": "extract"},
            ],
            ["body", "steps", 3, "id"],
            "is on both",
        ),
    ],
    ids=[
        "dangling",
        "cycle",
        "duplicate",
        "unknown-service",
        "unknown-action",
        "unreachable",
        "branch-leak",
    ],
)
async def test_bad_workflows_get_422_naming_the_field(
    client: httpx.AsyncClient,
    services: ActionServices,
    steps: list[dict[str, Any]],
    loc: list[Any],
    fragment: str,
) -> None:
    await register_all(client, services)
    response = await client.post("/api/workflows", json={"name": "bad", "steps": steps})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(item["loc"] == loc and fragment in item["msg"] for item in detail), detail


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "w", "steps": []}, ["body", "steps"]),
        ({"name": "w", "steps": [{"id": "a", "service": "s"}]}, ["body", "steps", 0]),
        (
            {"name": "w", "steps": [{"id": "bad id", "service": "s", "action": "a"}]},
            ["body", "steps", 0, "id"],
        ),
        ({"name": "w", "steps": "nope"}, ["body", "steps"]),
        ({"steps": [{"id": "a", "service": "s", "action": "a"}]}, ["body", "name"]),
        (
            {
                "name": "w",
                "steps": [{"id": "a", "service": "s", "action": "a", "timeout_seconds": -1}],
            },
            ["body", "steps", 0, "timeout_seconds"],
        ),
    ],
)
async def test_malformed_workflow_bodies_get_422(
    client: httpx.AsyncClient, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post("/api/workflows", json=body)
    assert response.status_code == 422, response.text
    assert any(item["loc"][: len(loc)] == loc for item in response.json()["detail"]), response.text


async def test_bad_execution_input_fails_the_step_with_the_field(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    workflow = await create_workflow(client, SEED_STEPS)
    done = await wait_done(client, (await execute(client, workflow["id"], {"wrong": 1}))["id"])
    assert done["status"] == "FAILED"
    assert done["error"]["type"] == "ValidationError"
    assert "document_url" in done["error"]["message"]
    assert services.calls() == []


async def test_execute_service_action_validates_both_ways(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    ok = await client.post(
        "/api/services/text-extraction/actions/extract/execute",
        json={"input_data": {"document_url": "https://x.test/"}, "context": {"request_id": "r"}},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["output"]["text"].startswith("Text of https://x.test/")
    bad = await client.post(
        "/api/services/text-extraction/actions/extract/execute",
        json={"input_data": {"document_url": 5}},
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "input_data", "document_url"]
    missing = await client.post(
        "/api/services/text-extraction/actions/nope/execute", json={"input_data": {}}
    )
    assert missing.status_code == 404
    assert missing.json()["resource_type"] == "action"


async def test_service_health_comes_from_the_monitor(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    health = (await client.get("/api/services/text-extraction/health")).json()
    assert health["status"] == "healthy"
    assert health["service"] == "text-extraction"
    body = make_service("down", endpoint="http://127.0.0.1:9/api")
    assert (await client.post("/api/services", json=body)).status_code == 201
    down = (await client.get("/api/services/down/health")).json()
    assert down["status"] in ("degraded", "unhealthy")
    assert down["consecutive_failures"] == 1


async def test_the_same_workflow_again_is_200_and_a_different_one_409(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    first = await create_workflow(client, SEED_STEPS)
    body = {"name": "document-sentiment", "description": "test", "steps": SEED_STEPS}
    again = await client.post("/api/workflows", json={**body, "metadata": {"v": 1}})
    assert again.status_code == 200, again.text
    assert again.json() == first
    different = await client.post("/api/workflows", json={**body, "metadata": {"v": 2}})
    assert different.status_code == 409, different.text
    assert (await client.get("/api/workflows")).json()["total"] == 1
