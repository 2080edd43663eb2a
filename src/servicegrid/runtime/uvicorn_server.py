"""``GracefulServer``: uvicorn's server for our HTTP services, ending cleanly on SIGTERM.

uvicorn catches SIGTERM/SIGINT, shuts down gracefully, then raises the signal
again once ``serve()`` returns, so the process dies there: code after
``serve()`` (deregistering from discovery) never runs and the exit code is 143.
The gRPC services end with exit code 0 after their own clean-up; this server
lets the HTTP services (gateway, integration) do the same.
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

__all__ = ["GracefulServer"]


class GracefulServer(uvicorn.Server):
    """A ``uvicorn.Server`` that stops on SIGTERM/SIGINT without raising the signal again."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for requests in flight
        else:
            self.should_exit = True
