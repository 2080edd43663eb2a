"""An ASGI app on a real uvicorn server in a background thread, on a free loopback port.

    with ThreadedServer(app) as server:
        httpx.get(f"{server.url}/health")

The test servers (:mod:`tests.support.faulty_server`, :mod:`tests.support.action_services`,
:mod:`tests.support.openai_standin`) subclass it and add what they serve; the first two also
run as a process of their own through :func:`serve_from_command_line`.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Literal, Self

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ThreadedServer", "free_port", "serve_from_command_line"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_from_command_line(app: ASGIApp, *, description: str | None) -> None:
    """Serve ``app`` in the foreground on ``127.0.0.1:--port`` (``python -m <module> --port N``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="critical")


class ThreadedServer:
    """``app`` served by uvicorn on ``127.0.0.1:port``; ``with`` (or start/stop) runs it.

    ``start()`` waits up to ``start_timeout`` seconds for the server to listen and raises
    RuntimeError naming ``name`` if it does not; ``stop()`` waits up to ``stop_timeout``
    seconds for its thread. Without ``port``, a free one is picked.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        port: int | None = None,
        name: str = "server",
        lifespan: Literal["auto", "on", "off"] = "off",
        log_level: str = "critical",
        graceful_shutdown: int = 1,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.port = port or free_port()
        self._name = name
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level=log_level,
            lifespan=lifespan,
            timeout_graceful_shutdown=graceful_shutdown,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self._stop_timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
