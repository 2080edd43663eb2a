"""Two workers on one PostgreSQL database; one is killed with SIGKILL in the middle of 200
executions, and the other takes its executions over: all end COMPLETED, each step applied once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.integration.conftest import sync_url
from tests.support.action_services import ActionServices
from tests.support.integration_process import IntegrationProcess, register_noop_workflow

EXECUTIONS = 200
KILL_AFTER = 100
WORKER_TIMEOUT = 3.0


def _worker(database_url: str, tmp_path: Path, name: str) -> IntegrationProcess:
    env = {
        "SERVICEGRID_INTEGRATION_EXECUTOR_ID": name,
        "SERVICEGRID_WORKER_TIMEOUT": str(WORKER_TIMEOUT),
    }
    return IntegrationProcess(database_url, tmp_path / f"{name}.log", env=env)


def _worker_rows(database: sa.Engine) -> set[str]:
    with database.connect() as connection:
        rows = connection.execute(sa.text("SELECT executor_id FROM integration_workers"))
        return {row[0] for row in rows}


def test_a_killed_workers_executions_are_taken_over(postgres_url: str, tmp_path: Path) -> None:
    database = sa.create_engine(sync_url(postgres_url))
    with ActionServices() as services:
        services.control(delay={"/noop/api/a": 0.2, "/noop/api/b": 0.2})
        first, second = _worker(postgres_url, tmp_path, "w1"), _worker(postgres_url, tmp_path, "w2")
        first.start()
        second.start()
        try:
            with (
                httpx.Client(base_url=first.api, timeout=30) as one,
                httpx.Client(base_url=second.api, timeout=30) as two,
            ):
                workflow = register_noop_workflow(one, services.endpoint("noop"))
                ids: list[str] = []
                killed_at = 0.0
                for index in range(EXECUTIONS):
                    client = one if index % 2 == 0 and index < KILL_AFTER else two
                    started = client.post(f"/workflows/{workflow['id']}/execute", json={})
                    ids.append(started.json()["id"])
                    if index == KILL_AFTER:
                        first.kill()
                        killed_at = time.monotonic()
                takeover = _wait_for_takeover(database, killed_at)
                statuses = _wait_for_the_end(two, ids)
        finally:
            first.kill()
            second.stop()
            database.dispose()
        executed = Counter(c["key"] for c in services.calls() if c["outcome"] == "executed")
    assert takeover <= WORKER_TIMEOUT + 10, takeover
    assert statuses == Counter({"COMPLETED": EXECUTIONS}), statuses
    assert len(executed) == 2 * EXECUTIONS  # every step's effect, each applied once
    assert set(executed.values()) == {1}


def _wait_for_takeover(database: sa.Engine, killed_at: float) -> float:
    """Seconds from the kill until the survivor removed the dead worker's row."""
    deadline = killed_at + WORKER_TIMEOUT + 60
    while time.monotonic() < deadline:
        if "w1" not in _worker_rows(database):
            return time.monotonic() - killed_at
        time.sleep(0.1)
    raise AssertionError("the surviving worker never took the dead one over")


def _wait_for_the_end(client: httpx.Client, ids: list[str]) -> Counter[str]:
    deadline = time.monotonic() + 120
    statuses: Counter[str] = Counter()
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still = []
        for execution_id in pending:
            status = client.get(f"/executions/{execution_id}").json()["status"]
            if status in ("PENDING", "RUNNING"):
                still.append(execution_id)
            else:
                statuses[status] += 1
        pending = still
        if pending:
            time.sleep(0.2)
    statuses["unfinished"] += len(pending)
    return +statuses
