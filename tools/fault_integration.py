"""Kill the integration service with SIGKILL at random points while executions run, again and again.

    python tools/fault_integration.py --kills 100                      # SQLite
    python tools/fault_integration.py --kills 100 --database postgresql  # a throwaway PostgreSQL

The service runs as its own process (``servicegrid serve integration``). Real HTTP services
(``tests/support/action_services.py``, in this process, so they outlive every kill) implement
the actions and log every call with its ``Idempotency-Key``. Each round submits new executions
of a 3-step workflow and of a fork/join workflow, waits a random time, kills the service, and
starts it again. At the end every execution must have finished, and the log must show:

- no execution lost: every submission has an execution, and every execution ended COMPLETED or
  FAILED with its reason;
- no completed step run again: no action call arrives after its step's result was checkpointed
  (a step's checkpoint is its row in ``execution_steps``, stamped before it is written);
- each step's effect applied once: a step cut off by a kill runs again with the same key, and
  the callee answers it from its store instead of running the action twice.

Exit status 0 when all hold. ``--json`` prints the counts for the docs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.action_services import ActionServices  # noqa: E402
from tests.support.integration_process import IntegrationProcess  # noqa: E402

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
SCHEMA_ANY = {"type": "object"}

LINEAR = [
    {"id": "extract-text", "service": "text-extraction", "action": "extract",
     "next": "analyze-sentiment"},
    {"id": "analyze-sentiment", "service": "sentiment-analysis", "action": "analyze",
     "next": "generate-summary",
     "input": {"text": "${steps.extract-text.output.text}"}},
    {"id": "generate-summary", "service": "text-summarization", "action": "summarize",
     "input": {"text": "${steps.extract-text.output.text}"}},
]  # fmt: skip

FORK = [
    {"id": "extract-text", "service": "text-extraction", "action": "extract", "next": "fan-out"},
    {"id": "fan-out", "fork": ["sentiment", "summary"], "next": "translate"},
    {"id": "sentiment", "service": "sentiment-analysis", "action": "analyze"},
    {"id": "summary", "service": "text-summarization", "action": "summarize"},
    {"id": "translate", "service": "translation", "action": "translate",
     "input": {"text": "${steps.summary.output.summary}"}},
]  # fmt: skip

ACTIONS = {
    "text-extraction": "extract",
    "sentiment-analysis": "analyze",
    "text-summarization": "summarize",
    "translation": "translate",
}


def _register(api: str, services: ActionServices) -> dict[str, str]:
    with httpx.Client(base_url=api, timeout=10) as client:
        for name, action in ACTIONS.items():
            body = {
                "name": name,
                "endpoint": services.endpoint(name),
                "actions": [
                    {"name": action, "input_schema": SCHEMA_ANY, "output_schema": SCHEMA_ANY}
                ],
            }
            client.post("/services", json=body).raise_for_status()
        ids = {}
        for name, steps in (("linear", LINEAR), ("fork-join", FORK)):
            response = client.post("/workflows", json={"name": name, "steps": steps})
            response.raise_for_status()
            ids[name] = response.json()["id"]
        return ids


def _submit(api: str, workflow_id: str, key: str, n: int) -> str | None:
    """POST one execution; None when the service went away (the caller retries with ``key``)."""
    try:
        response = httpx.post(
            f"{api}/workflows/{workflow_id}/execute",
            json={"input_data": {"document_url": f"https://docs.test/{n}.pdf"}},
            headers={"Idempotency-Key": key},
            timeout=5,
        )
    except httpx.TransportError:
        return None
    if response.status_code != 202:
        return None
    execution_id: str = response.json()["id"]
    return execution_id


def _wait_all(api: str, ids: set[str], limit: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + limit
    done: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=api, timeout=10) as client:
        while time.monotonic() < deadline and len(done) < len(ids):
            for execution_id in sorted(ids - set(done)):
                body = client.get(f"/executions/{execution_id}").json()
                if body.get("status") in TERMINAL:
                    done[execution_id] = body
            time.sleep(0.2)
        for execution_id in ids - set(done):
            done[execution_id] = client.get(f"/executions/{execution_id}").json()
    return done


def _checkpoints(database_url: str) -> dict[str, int]:
    """Step key → when its result was checkpointed (ms since the epoch): a step's checkpoint is
    its row in ``execution_steps`` with a final status, stamped before it is written."""
    engine = sa.create_engine(database_url)
    query = (
        "SELECT execution_id, step_id, finished_at FROM execution_steps "
        "WHERE status IN ('COMPLETED', 'FAILED')"
    )
    found = {}
    with engine.connect() as connection:
        for execution_id, step_id, finished in connection.execute(sa.text(query)):
            if isinstance(finished, str):
                finished = datetime.fromisoformat(finished).replace(tzinfo=UTC)
            found[f"{execution_id}:{step_id}"] = int(finished.timestamp() * 1000)
    engine.dispose()
    return found


@contextmanager
def _database(kind: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """(service DATABASE_URL, the same database for a blocking driver) for a fresh database."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/integration.db", f"sqlite:///{workdir}/integration.db"
        return
    from tests.support.postgres import PostgresServer

    with PostgresServer() as server:
        database = server.create_database("faults")
        yield database.url, database.psycopg_url


def run(kills: int, kind: str, seed: int, per_round: int, workdir: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    with ActionServices() as services, _database(kind, workdir) as (database_url, blocking_url):
        for path in ("extract", "analyze", "summarize", "translate"):
            service = next(name for name, action in ACTIONS.items() if action == path)
            services.control(delay={f"/{service}/api/{path}": 0.03})
        service = IntegrationProcess(database_url, workdir / "integration.log")
        service.start()
        workflows = _register(service.api, services)
        submitted: dict[str, str | None] = {}
        started = time.monotonic()
        for round_number in range(kills):
            for n in range(per_round):
                key = f"submit-{round_number}-{n}-{uuid.uuid4().hex[:8]}"
                workflow = workflows["fork-join" if n % 3 == 0 else "linear"]
                submitted[key] = _submit(service.api, workflow, key, n)
            time.sleep(rng.uniform(0.0, 0.6))
            service.kill()
            service.start()
            for key, execution_id in list(submitted.items()):
                if execution_id is None:  # cut off mid-request: retried with the same key
                    workflow = workflows["fork-join" if key.endswith("-0") else "linear"]
                    submitted[key] = _submit(service.api, workflow, key, 0)
        lost_submissions = [key for key, value in submitted.items() if value is None]
        ids = {value for value in submitted.values() if value is not None}
        results = _wait_all(service.api, ids, limit=300)
        service.stop()
        checkpoints = _checkpoints(blocking_url)
        calls = services.calls()
    statuses = Counter(str(body.get("status")) for body in results.values())
    unfinished = [eid for eid, body in results.items() if body.get("status") not in TERMINAL]
    failed_without_reason = [
        eid
        for eid, body in results.items()
        if body.get("status") == "FAILED" and not body.get("error")
    ]
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_key[call["key"]].append(call)
    executed_twice = [
        key
        for key, entries in by_key.items()
        if sum(e["outcome"] == "executed" for e in entries) > 1
    ]
    replayed = sum(call["outcome"] == "replayed" for call in calls)
    rerun_after_checkpoint = [
        key
        for key, entries in by_key.items()
        if key in checkpoints and any(e["received_at"] * 1000 > checkpoints[key] for e in entries)
    ]
    steps_completed = sum(
        1
        for body in results.values()
        for step in body.get("steps", [])
        if step["status"] == "COMPLETED"
    )
    return {
        "database": kind,
        "kills": kills,
        "service_starts": service.starts,
        "seconds": round(time.monotonic() - started, 1),
        "executions_submitted": len(submitted),
        "executions_lost": len(lost_submissions)
        + sum(1 for b in results.values() if "status" not in b),
        "executions_unfinished": len(unfinished),
        "statuses": dict(statuses),
        "failed_without_reason": len(failed_without_reason),
        "steps_completed": steps_completed,
        "action_calls": len(calls),
        "steps_rerun_after_checkpoint": len(rerun_after_checkpoint),
        "steps_cut_off_and_replayed": replayed,
        "step_effects_applied_twice": len(executed_twice),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--per-round", type=int, default=4, help="executions submitted per round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-faults-") as folder:
        report = run(args.kills, args.database, args.seed, args.per_round, Path(folder))
    ok = (
        report["executions_lost"] == 0
        and report["executions_unfinished"] == 0
        and report["failed_without_reason"] == 0
        and report["steps_rerun_after_checkpoint"] == 0
        and report["step_effects_applied_twice"] == 0
    )
    report["ok"] = ok
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:32} {value}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
