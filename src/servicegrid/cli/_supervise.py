"""Start the local model services as child processes, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from servicegrid.cli._serve import LocalService

__all__ = ["Supervisor"]


class Supervisor:
    """One ``servicegrid serve NAME`` process per service; SIGTERM, then SIGKILL, on stop."""

    def __init__(self, services: Sequence[LocalService]) -> None:
        self.services = list(services)
        self.processes: dict[LocalService, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for service in self.services:
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", "servicegrid.cli", "serve", service.value],
                env=os.environ.copy(),
            )

    def exited(self) -> dict[LocalService, int]:
        """Services whose process has ended, with its exit code."""
        return {
            service: code
            for service, process in self.processes.items()
            if (code := process.poll()) is not None
        }

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every child (they drain in-flight calls); SIGKILL any left after ``grace``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
