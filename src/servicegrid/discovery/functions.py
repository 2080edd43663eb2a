"""Seed 002's discovery calls, over a process-wide :class:`Discovery` unless one is given.

.. code-block:: python

    from servicegrid import discover_service, discover_service_async

    url = await discover_service_async("USER_SERVICE")               # "http://localhost:8001"
    target = await discover_service_async("USER_SERVICE", protocol="grpc")   # "localhost:50061"
    urls = await discover_all_async("user-service")                   # every healthy instance
    url = discover_service("USER_SERVICE")                            # from synchronous code

The default :class:`Discovery` is made from :func:`~servicegrid.settings.load_settings`
on first use. It holds a cache and, per event loop, the backends' connections,
which close with their loop; an application that wants its own lifecycle
(or a test) builds a :class:`Discovery` and passes ``discovery=``, or installs
it with :func:`set_default_discovery`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from servicegrid.discovery.base import Answer, WireProtocol
from servicegrid.discovery.resolver import Discovery

__all__ = [
    "default_discovery",
    "discover_all",
    "discover_all_async",
    "discover_service",
    "discover_service_async",
    "discovery_metadata_async",
    "run_blocking",
    "set_default_discovery",
]

T = TypeVar("T")

_lock = threading.Lock()
_default: Discovery | None = None
_turns = itertools.count()


def default_discovery() -> Discovery:
    """The process-wide :class:`Discovery`, made from the settings on first use."""
    global _default
    with _lock:
        if _default is None:
            from servicegrid.settings import load_settings

            _default = Discovery.from_settings(load_settings())
        return _default


def set_default_discovery(discovery: Discovery | None) -> Discovery | None:
    """Install ``discovery`` as the default (None: make a new one from settings on next use);
    returns the one it replaces, which the caller closes if it is done with it."""
    global _default
    with _lock:
        previous, _default = _default, discovery
    return previous


def _pick(answer: Answer) -> str:
    """One instance's locator, taking turns so that callers spread over the instances."""
    locators = answer.locators
    return locators[next(_turns) % len(locators)]


async def discover_service_async(
    name: str, protocol: WireProtocol | None = None, *, discovery: Discovery | None = None
) -> str:
    """The URL of one healthy instance of ``name`` (``protocol="grpc"``: its gRPC target).

    ``name`` is an env prefix (``USER_SERVICE``) or a discovery name (``user-service``);
    the protocol defaults to the service's own. Raises
    :class:`~servicegrid.errors.UnknownServiceError` when no backend knows it and
    :class:`~servicegrid.errors.DiscoveryError` when the backends failed.
    """
    answer = await (discovery or default_discovery()).resolve(name, protocol)
    return _pick(answer)


async def discover_all_async(
    name: str, protocol: WireProtocol | None = None, *, discovery: Discovery | None = None
) -> list[str]:
    """The URL (or gRPC target) of every healthy instance of ``name``."""
    answer = await (discovery or default_discovery()).resolve(name, protocol)
    return answer.locators


async def discovery_metadata_async(
    name: str, protocol: WireProtocol | None = None, *, discovery: Discovery | None = None
) -> dict[str, Any]:
    """Where ``name`` is and how that is known: ``urls``, ``backend``, ``age_seconds``,
    ``instances``, ``stale``."""
    found = discovery or default_discovery()
    answer = await found.resolve(name, protocol)
    return {"urls": answer.locators, **found.metadata(answer)}


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous code, inside a running loop or not:
    in a thread of its own there, so the loop's thread is never reused."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # called from a coroutine's thread: a blocking call there must not reuse its loop
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="discovery") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def discover_service(
    name: str, protocol: WireProtocol | None = None, *, discovery: Discovery | None = None
) -> str:
    """:func:`discover_service_async` for synchronous code; a cached answer costs no loop."""
    found = discovery or default_discovery()
    answer = found.cached(name, protocol)
    if answer is not None:
        return _pick(answer)
    return run_blocking(discover_service_async(name, protocol, discovery=found))


def discover_all(
    name: str, protocol: WireProtocol | None = None, *, discovery: Discovery | None = None
) -> list[str]:
    """:func:`discover_all_async` for synchronous code."""
    found = discovery or default_discovery()
    answer = found.cached(name, protocol)
    if answer is not None:
        return answer.locators
    return run_blocking(discover_all_async(name, protocol, discovery=found))
