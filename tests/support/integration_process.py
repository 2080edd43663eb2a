"""The integration service as a child process (`servicegrid serve integration`) to kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.faulty_server import free_port

ROOT = Path(__file__).resolve().parents[2]


class IntegrationProcess:
    """``servicegrid serve integration`` as a child process that can be killed for real."""

    def __init__(
        self, database_url: str, log_path: Path, *, env: dict[str, str] | None = None
    ) -> None:
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.database_url = database_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SERVICEGRID_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT / "src"),
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "servicegrid.cli", "serve", "integration",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"integration service exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.api}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("integration service did not become healthy in 60 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def register_noop_workflow(client: httpx.Client, endpoint: str) -> dict[str, Any]:
    """Register service ``noop`` at ``endpoint`` (actions ``a`` and ``b``, any input) and create
    workflow ``w``, which runs ``a`` then ``b``; returns the workflow."""
    actions = [{"name": name, "input_schema": {}, "output_schema": {}} for name in "ab"]
    body = {"name": "noop", "endpoint": endpoint, "actions": actions}
    client.post("/services", json=body).raise_for_status()
    steps = [
        {"id": "one", "service": "noop", "action": "a", "next": "two"},
        {"id": "two", "service": "noop", "action": "b"},
    ]
    created = client.post("/workflows", json={"name": "w", "steps": steps})
    created.raise_for_status()
    workflow: dict[str, Any] = created.json()
    return workflow
