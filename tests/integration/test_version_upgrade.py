"""A run cut off under an earlier version of the service is not left waiting after an upgrade.

The durable engine recovers only the runs of its own application version. An execution whose
run an earlier version started and never finished is marked FAILED at start, saying so, and
resuming it finishes it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from servicegrid.integration import durable
from tests.integration.conftest import running
from tests.support.action_services import ActionServices

SLOW_STEP = "/noop/api/a"
FINAL = ("COMPLETED", "FAILED", "CANCELLED")


async def _until(client: httpx.AsyncClient, execution_id: str, done: Any) -> dict[str, Any]:
    for _ in range(400):
        execution: dict[str, Any] = (await client.get(f"/api/executions/{execution_id}")).json()
        if done(execution):
            return execution
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} never got there: {execution}")


async def test_a_run_of_an_earlier_version_fails_with_its_reason_and_resumes(
    tmp_path: Path, services: ActionServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/i.db"
    services.control(delay={SLOW_STEP: 2.0})
    monkeypatch.setattr(durable, "APP_VERSION", "servicegrid-executions-0")
    async with running(url) as client:
        actions = [{"name": "a", "input_schema": {}, "output_schema": {}}]
        body = {"name": "noop", "endpoint": services.endpoint("noop"), "actions": actions}
        (await client.post("/api/services", json=body)).raise_for_status()
        steps = [{"id": "one", "service": "noop", "action": "a"}]
        workflow = (await client.post("/api/workflows", json={"name": "w", "steps": steps})).json()
        started = await client.post(f"/api/workflows/{workflow['id']}/execute", json={})
        execution_id = started.json()["id"]
        await _until(client, execution_id, lambda e: e["steps"] and e["steps"][0]["status"])
    # stopped in the middle of the step; the service comes back as a later version
    monkeypatch.undo()
    services.control(delay={SLOW_STEP: 0.0})
    async with running(url) as client:
        failed = (await client.get(f"/api/executions/{execution_id}")).json()
        assert failed["status"] == "FAILED", failed
        assert "earlier version" in failed["error"]["message"]

        (await client.post(f"/api/executions/{execution_id}/resume")).raise_for_status()
        finished = await _until(client, execution_id, lambda e: e["status"] in FINAL)
    assert finished["status"] == "COMPLETED", finished
    keys = {call["key"] for call in services.calls(SLOW_STEP)}
    assert keys == {f"{execution_id}:one"}
