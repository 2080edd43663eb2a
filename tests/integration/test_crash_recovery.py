"""Executions survive SIGKILL of the integration service (the fault script, a few kills each).

``tools/fault_integration.py --kills 100`` is the full run (see docs/integration.md); here each
backend gets a handful of kills so the suite stays short.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.support.action_services import ActionServices
from tests.support.integration_process import IntegrationProcess, register_noop_workflow

ROOT = Path(__file__).resolve().parents[2]


def _fault_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fault_integration", ROOT / "tools" / "fault_integration.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_integration"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_killed_service_loses_no_execution_and_reruns_no_completed_step(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "postgresql":
        request.getfixturevalue("postgres_server")  # skips, saying why, without PostgreSQL
    report = _fault_script().run(kills=6, kind=database, seed=11, per_round=4, workdir=tmp_path)
    assert report["executions_submitted"] == 24
    assert report["executions_lost"] == 0, report
    assert report["executions_unfinished"] == 0, report
    assert report["failed_without_reason"] == 0, report
    assert report["steps_rerun_after_checkpoint"] == 0, report
    assert report["step_effects_applied_twice"] == 0, report
    assert set(report["statuses"]) <= {"COMPLETED", "FAILED"}, report


def test_sigterm_cuts_runs_off_and_the_next_start_finishes_them(tmp_path: Path) -> None:
    with ActionServices() as services:
        services.control(delay={"/noop/api/a": 0.5, "/noop/api/b": 0.5})
        service = IntegrationProcess(f"sqlite:///{tmp_path}/i.db", tmp_path / "integration.log")
        service.start()
        try:
            with httpx.Client(base_url=service.api, timeout=10) as client:
                workflow = register_noop_workflow(client, services.endpoint("noop"))
                ids = [
                    client.post(f"/workflows/{workflow['id']}/execute", json={}).json()["id"]
                    for _ in range(6)
                ]
            time.sleep(0.3)
            service.stop()  # SIGTERM while every execution is in its first step
            service.start()
            with httpx.Client(base_url=service.api, timeout=10) as client:
                deadline = time.monotonic() + 60
                statuses: list[str] = []
                while time.monotonic() < deadline:
                    statuses = [client.get(f"/executions/{i}").json()["status"] for i in ids]
                    if all(status == "COMPLETED" for status in statuses):
                        break
                    time.sleep(0.1)
        finally:
            service.stop()
        executed = [call for call in services.calls() if call["outcome"] == "executed"]
    assert statuses == ["COMPLETED"] * 6
    assert len(executed) == 12  # each step's effect once, cut-off steps answered by key
