"""The gateway and everything it fronts, each a process of its own on a free loopback port.

    with GatewayProcesses(tmp_path, api_key="test-key", llm_names=("a", "b")) as stack:
        stack.gateway_url          # http://127.0.0.1:<port>, GET /ready answered 200
        stack.ports["embedding"]   # the gRPC services: "embedding", "reranking", "documents"
        stack.kill("llm-b")        # SIGKILL one process, as a crash does

Every process starts at once (``python -m servicegrid.cli serve NAME --port N`` for the
model services and the gateway, ``python -m tests.support.llm_hosts`` for the stand-in
LLM hosts), then each is awaited by its own readiness: gRPC health SERVING, ``GET /health``
or ``GET /ready`` answering 200. Nothing sleeps for a fixed time. Leaving the ``with``
sends SIGTERM to every process still running and SIGKILLs those that outlive the grace.
Each process writes to ``<log_dir>/<name>.log``; a process that dies while awaited fails
with that log's tail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from tests.support.threaded_server import free_port

__all__ = ["GatewayProcesses", "ServedProcess"]

ROOT = Path(__file__).resolve().parents[2]
MODEL_SERVICES = ("embedding", "reranking", "documents")
LLM_MODEL = "standin-llm"
STARTUP = 120.0  # seconds every process together may take to become ready
STOP_GRACE = 30.0  # seconds after SIGTERM before SIGKILL
POLL = 0.1  # seconds between readiness probes


class ServedProcess:
    """One child process and its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log_file: IO[bytes] = log.open("wb")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check_running(self) -> None:
        """Raises AssertionError, with the log's tail, when the process has exited."""
        if not self.running():
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def close_log(self) -> None:
        self._log_file.close()


class GatewayProcesses:
    """The model services, ``len(llm_names)`` stand-in LLM hosts and the gateway over them."""

    def __init__(
        self,
        log_dir: Path,
        *,
        api_key: str,
        llm_names: tuple[str, ...] = ("a", "b"),
        startup: float = STARTUP,
    ) -> None:
        self.log_dir = log_dir
        self.api_key = api_key
        self.llm_names = llm_names
        self.startup = startup
        self.ports: dict[str, int] = {name: free_port() for name in MODEL_SERVICES}
        self.llm_ports = {name: free_port() for name in llm_names}
        self.gateway_port = free_port()
        self.processes: dict[str, ServedProcess] = {}

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def __enter__(self) -> Self:
        try:
            self._start_all()
            self._await_all()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def kill(self, name: str) -> None:
        """SIGKILL the process ``name`` (``"llm-a"``, ``"embedding"``, ...) and reap it."""
        process = self.processes[name].popen
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=STOP_GRACE)

    def stop(self) -> None:
        """SIGTERM every process still running, wait for all, SIGKILL whatever hangs."""
        for served in self.processes.values():
            if served.running():
                served.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for served in self.processes.values():
            try:
                served.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                served.popen.kill()
                served.popen.wait(timeout=STOP_GRACE)
            served.close_log()

    # -- starting -------------------------------------------------------------------------

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "SERVICEGRID_DEVICE": "cpu",
            "SERVICEGRID_FORWARD_WORKERS": "1",
            "SERVICEGRID_DOCUMENTS_WORKERS": "1",
            **extra,
        }

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.processes[name] = ServedProcess(name, argv, env, self.log_dir / f"{name}.log")

    def _serve(self, service: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servicegrid.cli", "serve", service, "--port", str(port)]

    def _start_all(self) -> None:
        for service, port in self.ports.items():
            self._spawn(service, self._serve(service, port), self._env())
        for name, port in self.llm_ports.items():
            argv = [sys.executable, "-m", "tests.support.llm_hosts", "--port", str(port)]
            self._spawn(f"llm-{name}", [*argv, "--name", name], self._env())
        llm_urls = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in self.llm_ports.items())
        gateway_env = self._env(
            EMBEDDING_SERVICE_URL=f"127.0.0.1:{self.ports['embedding']}",
            RERANKING_SERVICE_URL=f"127.0.0.1:{self.ports['reranking']}",
            DOCLING_VLM_SERVICE_URL=f"127.0.0.1:{self.ports['documents']}",
            SERVICEGRID_LLM_URLS=llm_urls,
            SERVICEGRID_LLM_MODEL=LLM_MODEL,
            SERVICEGRID_API_KEYS=self.api_key,
            # the document job store derives its SQLite file's folder from this
            DATABASE_URL=f"sqlite:///{self.log_dir}/gateway.db",
        )
        self._spawn("gateway", self._serve("gateway", self.gateway_port), gateway_env)

    # -- waiting --------------------------------------------------------------------------

    def _await_all(self) -> None:
        deadline = time.monotonic() + self.startup
        for service, port in self.ports.items():
            self._until(self.processes[service], deadline, partial(_grpc_serving, port))
        for name, port in self.llm_ports.items():
            url = f"http://127.0.0.1:{port}/health"
            self._until(self.processes[f"llm-{name}"], deadline, partial(_http_ok, url))
        ready = f"{self.gateway_url}/ready"
        self._until(self.processes["gateway"], deadline, partial(_http_ok, ready))

    def _until(self, served: ServedProcess, deadline: float, probe: Callable[[], bool]) -> None:
        while time.monotonic() < deadline:
            served.check_running()
            if probe():
                return
            time.sleep(POLL)
        raise AssertionError(
            f"{served.name} was not ready within {self.startup} s:\n{served.tail()}"
        )


def _grpc_serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
