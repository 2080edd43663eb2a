"""Executions survive SIGKILL of the integration service (the fault script, a few kills each).

``tools/fault_integration.py --kills 100`` is the full run (see docs/integration.md); here each
backend gets a handful of kills so the suite stays short.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
