"""A throwaway single-member etcd for tests: its own data directory and loopback ports.

``with EtcdServer() as etcd: EtcdBackend(etcd.host, etcd.port)``. ``kill()`` sends SIGKILL
and keeps the data, ``start()`` brings it back on the same ports (``wipe()`` in between
loses the data, as an etcd without a volume would), ``stop()`` ends it and removes the
directory. The binary comes from ``PATH`` (``tools/ensure_etcd.sh`` installs it).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.threaded_server import free_port

__all__ = ["EtcdNotFound", "EtcdServer", "find_etcd"]

NAME = "servicegrid-test"


class EtcdNotFound(RuntimeError):
    """No ``etcd`` binary on this machine."""


def find_etcd() -> Path:
    """The ``etcd`` binary on ``PATH``; raises :class:`EtcdNotFound` when there is none."""
    found = shutil.which("etcd")
    if found is None:
        raise EtcdNotFound(
            "no etcd binary on PATH; run `bash tools/ensure_etcd.sh` as root to install it"
        )
    return Path(found)


class EtcdServer:
    """etcd on 127.0.0.1: a client port (``port``) and a peer port, both free ones.

    A short election timeout makes it ready in a fraction of a second (one member
    never has to wait for others). ``startup_timeout`` is in seconds.
    """

    host = "127.0.0.1"

    def __init__(self, *, binary: Path | None = None, startup_timeout: float = 30.0) -> None:
        self.binary = binary if binary is not None else find_etcd()
        self.startup_timeout = startup_timeout
        self.port = 0
        self.peer_port = 0
        self.base_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "etcd.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EtcdServer:
        """Start etcd (on the ports and data of the last run, if any); returns once healthy."""
        if self.running:
            raise RuntimeError("etcd is already running")
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="servicegrid-etcd-"))
            self.port, self.peer_port = free_port(), free_port()
        try:
            self._launch()
            self._wait_until_healthy()
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL etcd, as a crash would; the data directory stays."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def wipe(self) -> None:
        """Delete the data of a stopped etcd: the next ``start()`` begins a new, empty cluster."""
        if self.running:
            raise RuntimeError("wipe() needs etcd stopped")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def stop(self) -> None:
        """End etcd and remove its directory."""
        self.kill()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _base(self) -> Path:
        if self.base_dir is None:
            raise RuntimeError("etcd is not started")
        return self.base_dir

    def _launch(self) -> None:
        command = [
            str(self.binary),
            f"--name={NAME}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={NAME}={self.peer_url}",
            "--initial-cluster-state=new",
            "--heartbeat-interval=10",
            "--election-timeout=100",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while True:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"etcd exited while starting:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as answer:
                    body = answer.read()
                if b'"health":"true"' in body:
                    return
                last = body.decode(errors="replace")
            except OSError as exc:  # refused, timed out, or an HTTP error status
                last = str(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"etcd was not healthy within {self.startup_timeout:g} s ({last}):\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.02)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no etcd log)"
        return "\n".join(text.splitlines()[-lines:])
