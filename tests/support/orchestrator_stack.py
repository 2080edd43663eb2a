"""Everything seed 002's orchestrator reaches, each a process of its own, and the gateway over it.

    with OrchestratorStack(tmp_path) as stack:
        stack.gateway_url              # http://127.0.0.1:<port>, GET /ready answered 200
        stack.stop("reranking")        # SIGTERM (kill=True: SIGKILL, as a crash does), reaped
        stack.start("reranking")       # the same port again, awaited until ready
        stack.client_env(path)         # what another process needs to reach the services

The processes: the model services (``embedding``, ``reranking``, ``documents``: ``python -m
servicegrid.cli serve NAME --port P`` on the CPU), one stand-in LLM host (``llm``,
``tests/support/llm_hosts.py``), seed 002's ``users``, ``questions`` and ``api-gateway``
(:class:`~tests.support.app_processes.AppProcesses`) and the ``gateway``, configured through
its environment to reach them all, with its Qdrant index in local mode under the folder.
Every process starts at once and is awaited by its own readiness (gRPC health SERVING,
``GET /health`` or ``GET /ready`` 200), never by a fixed sleep. Each writes
``<folder>/<name>-<n>.log`` (n: its n-th start); one that dies while awaited fails with
that log's tail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from tests.support.app_processes import APPS, AppProcesses
from tests.support.gateway_processes import LLM_MODEL, ServedProcess, _grpc_serving, _http_ok
from tests.support.threaded_server import free_port

__all__ = ["MODEL_SERVICES", "NAMES", "OrchestratorStack"]

MODEL_SERVICES: Final = ("embedding", "reranking", "documents")
OWN: Final = (*MODEL_SERVICES, "llm", "gateway")
NAMES: Final = (*OWN, *APPS)
STARTUP: Final = 180.0  # seconds every process together may take to become ready (2-core CI)
STOP_GRACE: Final = 30.0  # seconds after SIGTERM before SIGKILL
POLL: Final = 0.1  # seconds between readiness probes
# A stopped service is reported at once, and used again within seconds of its restart:
# fewer retries, shorter backoff and a short breaker cool-down than the defaults.
RESILIENCE: Final = {
    "MAX_RETRY_ATTEMPTS": "2",
    "RETRY_BASE_DELAY": "0.1",
    "RETRY_MAX_DELAY": "0.5",
    "CIRCUIT_BREAKER_TIMEOUT": "2",
}
# inherited variables that would point a process elsewhere than this stack
_FOREIGN_SUFFIXES: Final = ("_URL", "_URLS", "_GRPC_TARGET")
_FOREIGN: Final = frozenset({"SERVICEGRID_API_KEYS", "SERVICEGRID_LLM_SERVICE", "QDRANT_PATH"})


def _inherited() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(_FOREIGN_SUFFIXES) and key not in _FOREIGN
    }


class OrchestratorStack:
    """The processes of the module docstring; ``gateway_env`` is added to the gateway's."""

    def __init__(
        self,
        folder: Path,
        *,
        gateway_env: dict[str, str] | None = None,
        startup: float = STARTUP,
    ) -> None:
        self.folder = folder
        self.startup = startup
        self.gateway_env = {**RESILIENCE, **(gateway_env or {})}
        self.ports = {name: free_port() for name in OWN}
        apps_folder = folder / "apps"
        apps_folder.mkdir(parents=True, exist_ok=True)
        self.apps = AppProcesses(apps_folder)
        self.processes: dict[str, ServedProcess] = {}
        self._starts: Counter[str] = Counter()

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def llm_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['llm']}"

    def url(self, name: str) -> str:
        """A seed 002 service's REST URL (``"users"``, ``"questions"``, ``"api-gateway"``)."""
        return self.apps.url(name)

    def client_env(self, qdrant_path: Path) -> dict[str, str]:
        """The environment for a process of its own that uses these services, with its own
        index folder (Qdrant's local mode allows one process per folder)."""
        return {
            **_inherited(),
            **self.apps.env,
            "EMBEDDING_SERVICE_URL": f"127.0.0.1:{self.ports['embedding']}",
            "RERANKING_SERVICE_URL": f"127.0.0.1:{self.ports['reranking']}",
            "DOCLING_VLM_SERVICE_URL": f"127.0.0.1:{self.ports['documents']}",
            "SERVICEGRID_LLM_URLS": f"standin={self.llm_url}",
            "SERVICEGRID_LLM_MODEL": LLM_MODEL,
            "SERVICEGRID_QDRANT_PATH": str(qdrant_path),
        }

    # ---- one process ---------------------------------------------------------------------

    def running(self, name: str) -> bool:
        processes = self.apps.processes if name in APPS else self.processes
        return name in processes and processes[name].running()

    def stop(self, name: str, *, kill: bool = False) -> int:
        """SIGTERM ``name`` (SIGKILL with ``kill``, or once the grace is over), reap it and
        return its exit code."""
        served = (self.apps.processes if name in APPS else self.processes)[name]
        if kill and served.running():
            served.popen.send_signal(signal.SIGKILL)
        if name in APPS:
            return self.apps.stop(name)
        if served.running():
            served.popen.send_signal(signal.SIGTERM)
        try:
            code = served.popen.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            served.popen.kill()
            code = served.popen.wait(timeout=STOP_GRACE)
        served.close_log()
        return code

    def start(self, name: str) -> None:
        """Start ``name`` again, on the same port(s), and wait until it is ready."""
        self._spawn(name)
        self._await((name,), time.monotonic() + self.startup)

    def restart(self, name: str, *, kill: bool = False) -> None:
        self.stop(name, kill=kill)
        self.start(name)

    # ---- all of them -------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            for name in NAMES:
                self._spawn(name)
            self._await(NAMES, time.monotonic() + self.startup)
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
        """SIGTERM every process still running (the gateway first), wait, SIGKILL what hangs."""
        for name in ("gateway", *(n for n in NAMES if n != "gateway")):
            if self.running(name):
                self.stop(name)

    # ---- starting and waiting ----------------------------------------------------------

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **_inherited(),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "SERVICEGRID_DEVICE": "cpu",
            "SERVICEGRID_FORWARD_WORKERS": "1",
            "SERVICEGRID_DOCUMENTS_WORKERS": "1",
            **extra,
        }

    def _argv(self, name: str) -> list[str]:
        port = str(self.ports[name])
        if name == "llm":
            return [sys.executable, "-m", "tests.support.llm_hosts", "--port", port, "--name", name]
        argv = [sys.executable, "-m", "servicegrid.cli", "serve", name, "--port", port]
        return [*argv, "--host", "127.0.0.1"] if name == "gateway" else argv

    def _gateway_env(self) -> dict[str, str]:
        return self._env(
            **self.client_env(self.folder / "qdrant"),
            # the document job store derives its SQLite file's folder from this
            DATABASE_URL=f"sqlite:///{self.folder}/gateway.db",
            **self.gateway_env,
        )

    def _spawn(self, name: str) -> None:
        if name in APPS:
            self.apps.start(name)
            return
        self._starts[name] += 1
        env = self._gateway_env() if name == "gateway" else self._env()
        log = self.folder / f"{name}-{self._starts[name]}.log"
        self.processes[name] = ServedProcess(name, self._argv(name), env, log)

    def _probe(self, name: str) -> Callable[[], bool]:
        if name in MODEL_SERVICES:
            return partial(_grpc_serving, self.ports[name])
        if name == "llm":
            return partial(_http_ok, f"{self.llm_url}/health")
        return partial(_http_ok, f"{self.gateway_url}/ready")

    def _await(self, names: tuple[str, ...], deadline: float) -> None:
        """Wait for each of ``names`` (the gateway last), failing with the log of one that
        exits or is not ready by ``deadline``."""
        apps = tuple(name for name in names if name in APPS)
        own = [name for name in OWN if name in names]
        for name in own:
            if name == "gateway" and apps:
                self.apps.wait_ready(apps)
                apps = ()
            served, probe = self.processes[name], self._probe(name)
            while not probe():
                served.check_running()
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not ready in {self.startup} s:\n{served.tail()}")
                time.sleep(POLL)
        if apps:
            self.apps.wait_ready(apps)
