"""A step's default retry: transient failures retried 3 times with backoff, one Idempotency-Key
for every attempt, and ``"retry": null`` to opt out. Real integration service and callees."""

from __future__ import annotations

import httpx

from tests.integration.conftest import make_service
from tests.integration.test_workflows import (
    SEED_STEPS,
    create_workflow,
    execute,
    register_all,
    wait_done,
)
from tests.support.action_services import ActionServices
from tests.support.faulty_server import free_port

ANALYZE = "/sentiment-analysis/api/analyze"


def _without_retry_key(steps: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in step.items() if k != "retry"} for step in steps]


async def test_a_step_without_its_own_retry_outlasts_a_callee_that_refuses_twice(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    workflow = await create_workflow(client, _without_retry_key(SEED_STEPS))
    assert "max_attempts" in str(workflow["steps"][1]["retry"])  # the defaults, shown
    services.control(fail={ANALYZE: 2})

    started = await execute(client, workflow["id"], {"document_url": "https://x.test/"})
    done = await wait_done(client, started["id"])

    assert done["status"] == "COMPLETED", done
    assert done["output"]["sentiment"] == "positive"
    assert done["steps"][1]["attempts"] == 3
    calls = services.calls("analyze")
    assert [call["outcome"] for call in calls] == ["failed", "failed", "executed"]
    assert len({call["key"] for call in calls}) == 1  # every attempt the same key
    assert calls[0]["key"] == f"{started['id']}:analyze-sentiment"


async def test_a_refused_connection_is_retried_three_times_then_fails_the_step(
    client: httpx.AsyncClient,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api"  # nothing listens: every connect is refused
    body = make_service(
        "gone",
        endpoint=nowhere,
        actions=[{"name": "run", "input_schema": {"type": "object"}, "output_schema": {}}],
    )
    assert (await client.post("/api/services", json=body)).status_code == 201
    workflow = await create_workflow(client, [{"id": "only", "service": "gone", "action": "run"}])

    done = await wait_done(client, (await execute(client, workflow["id"], {}))["id"])

    assert done["status"] == "FAILED", done
    assert done["steps"][0]["attempts"] == 4
    assert done["error"]["step"] == "only"


async def test_retry_null_makes_one_attempt(
    client: httpx.AsyncClient, services: ActionServices
) -> None:
    await register_all(client, services)
    steps = _without_retry_key(SEED_STEPS)
    steps[1]["retry"] = None
    workflow = await create_workflow(client, steps)
    assert workflow["steps"][1]["retry"] is None
    services.control(fail={ANALYZE: 1})

    done = await wait_done(
        client, (await execute(client, workflow["id"], {"document_url": "https://x.test/"}))["id"]
    )

    assert done["status"] == "FAILED", done
    assert done["steps"][1]["attempts"] == 1
    assert [call["outcome"] for call in services.calls("analyze")] == ["failed"]
