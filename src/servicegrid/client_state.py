"""The lifecycle every client shares (httpx's ``ClientState``): misuse becomes a clear error."""

from __future__ import annotations

import enum

__all__ = ["ClientState"]


class ClientState(enum.Enum):
    """Lifecycle of a client: requests are refused once it is CLOSED."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"
