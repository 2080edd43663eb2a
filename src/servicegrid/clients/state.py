"""The lifecycle every client shares; it lives in :mod:`servicegrid.client_state`, a leaf
module that clients outside this package (the LLM client) import without loading these."""

from __future__ import annotations

from servicegrid.client_state import ClientState

__all__ = ["ClientState"]
