"""Operating the integration service: the body limit, bounded patterns, and execution retention.

The app runs with its lifespan on SQLite and on PostgreSQL (``db_url``), behind an in-process
HTTP client; workflow steps call the real action services of :mod:`tests.support.action_services`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dbos import DBOS
from fastapi import FastAPI
from sqlalchemy import create_engine, update

from servicegrid.integration import create_app
from servicegrid.integration.db import ExecutionRow
from servicegrid.integration.retention import RetentionSweeper
from servicegrid.integration.schema_patterns import MATCH_TIMEOUT
from tests.integration.conftest import make_service, sync_url
from tests.integration.test_workflows import (
    SEED_STEPS,
    create_workflow,
    execute,
    register_all,
    wait_done,
)
from tests.support.action_services import ActionServices

MIB = 1024 * 1024
# a pattern that backtracks exponentially in the regex engine too, on a string it cannot match
EVIL_PATTERN = "^(a|a)*$"
EVIL_INPUT = "a" * 40 + "!"


@asynccontextmanager
async def started(
    database_url: str, **options: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app on ``database_url`` with ``create_app`` options, its lifespan run."""
    app = create_app(database_url, engine_poll_interval=0.05, **options)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://integration") as client,
    ):
        yield app, client


# ---- the body limit ---------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_with_413_in_the_service_error_format(
    tmp_path: Any,
) -> None:
    async with started(f"sqlite+aiosqlite:///{tmp_path}/i.db", max_body_bytes=4096) as (_, api):
        big = make_service("big", description="x" * 5000)
        response = await api.post("/api/services", json=big)
        assert response.status_code == 413, response.text
        body = response.json()
        assert body["error"] == "PayloadTooLarge"
        assert body["http_status"] == 413
        assert "limit" in body["detail"]
        assert body["details"] == {"max_bytes": 4096}

        # streamed without a Content-Length: counted as it arrives
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        streamed = await api.post(
            "/api/services", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413

        small = await api.post("/api/services", json=make_service("small"))
        assert small.status_code == 201, small.text


async def test_the_default_limit_is_ten_mib(tmp_path: Any) -> None:
    async with started(f"sqlite+aiosqlite:///{tmp_path}/i.db") as (_, api):
        response = await api.post(
            "/api/services",
            content=b"{" + b" " * (10 * MIB),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["details"] == {"max_bytes": 10 * MIB}


# ---- patterns in registered schemas ----------------------------------------------------


async def _register_with_pattern(
    api: httpx.AsyncClient, pattern: str, services: ActionServices
) -> str:
    """Register text-extraction with ``pattern`` on its input's ``code`` and property names."""
    body = make_service("text-extraction", endpoint=services.endpoint("text-extraction"))
    body["actions"][0]["input_schema"] = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": pattern}},
        "patternProperties": {pattern: {"type": "string"}},
        "required": ["code"],
    }
    body["actions"][0]["output_schema"] = {"type": "object"}
    registered = await api.post("/api/services", json=body)
    assert registered.status_code == 201, registered.text
    return str(registered.json()["id"])


async def _extract(
    api: httpx.AsyncClient, service_id: str, input_data: dict[str, Any]
) -> httpx.Response:
    """Run the service's action on ``input_data``, which the service checks first."""
    path = f"/api/services/{service_id}/actions/extract/execute"
    return await api.post(path, json={"input_data": input_data})


async def test_a_pattern_that_does_not_compile_is_refused_naming_the_field(
    tmp_path: Any,
) -> None:
    async with started(f"sqlite+aiosqlite:///{tmp_path}/i.db") as (_, api):
        body = make_service("bad-pattern")
        body["actions"][0]["input_schema"]["properties"]["document_url"]["pattern"] = "[a-"
        response = await api.post("/api/services", json=body)
        assert response.status_code == 422, response.text
        text = response.text
        assert "input_schema" in text
        assert "properties/document_url/pattern" in text
        assert "regex" in text


async def test_a_pathological_pattern_fails_validation_within_its_bound(
    tmp_path: Any, services: ActionServices
) -> None:
    async with started(f"sqlite+aiosqlite:///{tmp_path}/i.db") as (_, api):
        service_id = await _register_with_pattern(api, EVIL_PATTERN, services)
        response = await _extract(api, service_id, {"code": EVIL_INPUT})
        assert response.status_code == 422, response.text
        text = response.text
        assert "code" in text
        assert f"within {MATCH_TIMEOUT:g} s" in text

        # a property name is matched under the same bound
        response = await _extract(api, service_id, {"code": "aa", EVIL_INPUT: "x"})
        assert response.status_code == 422, response.text
        assert "could not be matched" in response.text

        # and the pattern still works on what it can decide
        response = await _extract(api, service_id, {"code": "b"})
        assert response.status_code == 422, response.text
        assert "does not match" in response.text


async def test_a_nested_quantifier_is_matched_without_backtracking_forever(
    tmp_path: Any, services: ActionServices
) -> None:
    async with started(f"sqlite+aiosqlite:///{tmp_path}/i.db") as (_, api):
        service_id = await _register_with_pattern(api, "^(a+)+$", services)
        response = await _extract(api, service_id, {"code": "a" * 36 + "!"})
        assert response.status_code == 422, response.text
        assert "does not match" in response.text


# ---- retention ---------------------------------------------------------------------------


async def _finished_executions(
    api: httpx.AsyncClient, services: ActionServices, count: int
) -> list[str]:
    await register_all(api, services)
    workflow = await create_workflow(api, SEED_STEPS)
    ids = []
    for n in range(count):
        started_execution = await execute(
            api, workflow["id"], {"document_url": f"https://x.test/{n}.pdf"}
        )
        done = await wait_done(api, started_execution["id"])
        assert done["status"] == "COMPLETED", done
        ids.append(done["id"])
    return ids


def _set_rows(database_url: str, execution_id: str, **values: Any) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                update(ExecutionRow).where(ExecutionRow.id == execution_id).values(**values)
            )
    finally:
        engine.dispose()


async def _runs(execution_id: str) -> list[str]:
    found = await DBOS.list_workflows_async(
        workflow_id_prefix=execution_id, load_input=False, load_output=False
    )
    return [run.workflow_id for run in found]


async def test_purge_deletes_old_finished_executions_only(
    db_url: str, services: ActionServices
) -> None:
    async with started(db_url, retention_days=7) as (app, api):
        old, old_failed, recent, running = await _finished_executions(api, services, 4)
        long_ago = datetime.now(UTC) - timedelta(days=30)
        _set_rows(db_url, old, finished_at=long_ago)
        _set_rows(db_url, old_failed, status="FAILED", finished_at=long_ago)
        # a RUNNING execution is never purged, however old
        _set_rows(db_url, running, status="RUNNING", finished_at=long_ago, created_at=long_ago)
        assert await _runs(old)

        sweeper = app.state.retention
        assert isinstance(sweeper, RetentionSweeper)
        purged = await sweeper.purge()

        assert sorted(purged) == sorted([old, old_failed])
        for gone in (old, old_failed):
            response = await api.get(f"/api/executions/{gone}")
            assert response.status_code == 404, response.text
            assert await _runs(gone) == []
        for kept in (recent, running):
            response = await api.get(f"/api/executions/{kept}")
            assert response.status_code == 200, response.text
            assert response.json()["steps"], "the steps of a kept execution stay"
        assert await _runs(recent)
        assert await sweeper.purge() == []


async def test_the_lifespan_purges_periodically(tmp_path: Any, services: ActionServices) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/i.db"
    async with started(database_url, retention_days=2, purge_interval=0.05) as (app, api):
        sweeper = app.state.retention
        old, recent = await _finished_executions(api, services, 2)
        _set_rows(database_url, old, finished_at=datetime.now(UTC) - timedelta(days=3))
        rounds = sweeper.purges
        for _ in range(2000):  # the sweeper runs in a task of its own: wait for two more rounds
            if sweeper.purges >= rounds + 2:
                break
            await asyncio.sleep(0.01)
        assert sweeper.purges >= rounds + 2
        assert (await api.get(f"/api/executions/{old}")).status_code == 404
        assert (await api.get(f"/api/executions/{recent}")).status_code == 200


async def test_without_a_retention_nothing_is_purged(tmp_path: Any) -> None:
    async with started(f"sqlite+aiosqlite:///{tmp_path}/i.db") as (app, _):
        assert app.state.retention is None


def test_a_sweeper_needs_a_positive_retention() -> None:
    engine: Any = object()
    with pytest.raises(ValueError, match="retention_days"):
        RetentionSweeper(engine, retention_days=0)
