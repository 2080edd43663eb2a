"""Who reports status, and where the status endpoint finds them (seed 001).

A client that has a circuit breaker registers itself in a
:class:`StatusRegistry` under a key (``"chroma"``); the status endpoint
(:func:`servicegrid.status_routes.create_status_router`) returns
``{key: reporter.get_status()}``. The registry holds reporters by weak
reference, so registering never keeps a client alive.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Protocol, runtime_checkable

__all__ = ["DEFAULT_REGISTRY", "StatusRegistry", "StatusReporter"]

_log = logging.getLogger("servicegrid.status")


@runtime_checkable
class StatusReporter(Protocol):
    """Anything that can describe its own state, such as a resilient client."""

    service_name: str

    def get_status(self) -> dict[str, Any]:
        """Seed 001's keys: ``service``, ``state``, ``failure_count``, ``last_failure``, ..."""
        ...


class StatusRegistry:
    """Thread-safe ``key -> reporter`` map holding reporters by weak reference.

    A reporter that has been garbage-collected disappears from every view.
    Reporters must support weak references (plain classes do; ``__slots__``
    classes need a ``__weakref__`` slot).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, weakref.ref[StatusReporter]] = {}

    def register(self, key: str, reporter: StatusReporter) -> None:
        """Report ``reporter`` under ``key``, replacing whatever was there.

        Raises ``TypeError`` if ``reporter`` cannot be weakly referenced.
        """
        try:
            ref = weakref.ref(reporter)
        except TypeError:
            raise TypeError(
                f"{type(reporter).__name__} cannot be weakly referenced; "
                "give it a __weakref__ slot to register it"
            ) from None
        with self._lock:
            self._refs[key] = ref

    def unregister(self, key: str) -> None:
        """Stop reporting ``key``; unknown keys are ignored."""
        with self._lock:
            self._refs.pop(key, None)

    def _live(self) -> dict[str, StatusReporter]:
        """The live reporters, dropping the dead ones; call with the lock held."""
        live: dict[str, StatusReporter] = {}
        for key, ref in list(self._refs.items()):
            reporter = ref()
            if reporter is None:
                del self._refs[key]
            else:
                live[key] = reporter
        return live

    def reporters(self) -> dict[str, StatusReporter]:
        """A snapshot of the live reporters by key."""
        with self._lock:
            return self._live()

    def statuses(self) -> dict[str, dict[str, Any]]:
        """``{key: reporter.get_status()}``, in registration order.

        Reporters are asked outside the lock. One that raises is reported as
        ``{"service": ..., "state": "unknown", "error": ...}`` instead of
        failing the whole answer.
        """
        result: dict[str, dict[str, Any]] = {}
        for key, reporter in self.reporters().items():
            try:
                result[key] = dict(reporter.get_status())
            except Exception as exc:
                _log.warning("status reporter %r failed", key, exc_info=True)
                result[key] = {
                    "service": getattr(reporter, "service_name", key),
                    "state": "unknown",
                    "error": f"{type(exc).__name__}: {exc}",
                }
        return result

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._live()

    def __len__(self) -> int:
        with self._lock:
            return len(self._live())

    def __repr__(self) -> str:
        return f"StatusRegistry({sorted(self.reporters())!r})"


DEFAULT_REGISTRY = StatusRegistry()
"""The registry clients register in unless they are given another one."""
