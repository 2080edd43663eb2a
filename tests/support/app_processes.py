"""Seed 002's users, questions and API gateway, each a process of its own on free loopback ports.

    with AppProcesses(tmp_path) as apps:                       # discovery through the environment
        apps.env["USER_SERVICE_URL"]                           # what a client process is given
        apps.restart("questions")                              # SIGTERM, wait, start again

    with AppProcesses(tmp_path, consul=consul) as apps: ...    # each registers in Consul

Every process is ``python -m servicegrid.cli serve NAME --port P --grpc-port G`` with its own
SQLite files under the log folder; each is awaited by its readiness (``GET /health`` 200 and
gRPC health SERVING), never by a fixed sleep. The API gateway finds the other two through
the same discovery a client would: the environment (``USER_SERVICE_URL``...) or Consul.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.consul_standin import ConsulStandIn
from tests.support.gateway_processes import ServedProcess, _grpc_serving, _http_ok
from tests.support.threaded_server import free_port

__all__ = ["APPS", "AppProcesses"]

APPS = ("users", "questions", "api-gateway")
ENV_PREFIX = {
    "users": "USER_SERVICE",
    "questions": "QUESTION_SERVICE",
    "api-gateway": "API_GATEWAY",
}
STARTUP = 90.0  # seconds the three together may take to become ready
STOP_GRACE = 30.0
POLL = 0.1


class AppProcesses:
    """The three services; see the module docstring. ``extra_env`` goes to every process."""

    def __init__(
        self,
        folder: Path,
        *,
        consul: ConsulStandIn | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.consul = consul
        self.extra_env = extra_env or {}
        self.ports = {name: free_port() for name in APPS}
        self.grpc_ports = {name: free_port() for name in APPS}
        self.processes: dict[str, ServedProcess] = {}
        self._starts = dict.fromkeys(APPS, 0)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_ports[name]}"

    @property
    def env(self) -> dict[str, str]:
        """The environment a client of these services needs: where each is, or where Consul is."""
        if self.consul is not None:
            host, _, port = self.consul.url.removeprefix("http://").rpartition(":")
            return {
                "CONSUL_HOST": host,
                "CONSUL_PORT": port,
                "SERVICEGRID_DISCOVERY_ORDER": "consul",
            }
        env = {}
        for name, prefix in ENV_PREFIX.items():
            env[f"{prefix}_URL"] = self.url(name)
            env[f"{prefix}_GRPC_TARGET"] = self.target(name)
        return env

    def _process_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            "SERVICEGRID_ADVERTISE_ADDRESS": "127.0.0.1",
            "USER_SERVICE_DATABASE_URL": f"sqlite:///{self.folder}/users.db",
            "QUESTION_SERVICE_DATABASE_URL": f"sqlite:///{self.folder}/questions.db",
            **self.extra_env,
        }

    def start(self, name: str) -> None:
        self._starts[name] += 1
        argv = [sys.executable, "-m", "servicegrid.cli", "serve", name]
        argv += ["--host", "127.0.0.1", "--port", str(self.ports[name])]
        argv += ["--grpc-port", str(self.grpc_ports[name])]
        log = self.folder / f"{name}-{self._starts[name]}.log"
        self.processes[name] = ServedProcess(name, argv, self._process_env(), log)

    def wait_ready(self, names: tuple[str, ...] = APPS) -> None:
        deadline = time.monotonic() + STARTUP
        for name in names:
            served = self.processes[name]
            probes = (
                partial(_http_ok, f"{self.url(name)}/health"),
                partial(_grpc_serving, self.grpc_ports[name]),
            )
            for probe in probes:
                while not probe():
                    served.check_running()
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name} not ready in {STARTUP} s:\n{served.tail()}")
                    time.sleep(POLL)

    def stop(self, name: str) -> int:
        """SIGTERM ``name``, wait for it (SIGKILL after the grace); its exit code."""
        served = self.processes[name]
        if served.running():
            served.popen.send_signal(signal.SIGTERM)
        try:
            code = served.popen.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            served.popen.kill()
            code = served.popen.wait(timeout=STOP_GRACE)
        served.close_log()
        return code

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)
        self.wait_ready((name,))

    def __enter__(self) -> Self:
        try:
            for name in APPS:
                self.start(name)
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for name, served in self.processes.items():
            if served.running():
                self.stop(name)
