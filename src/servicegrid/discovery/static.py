"""``StaticBackend``: a fixed list of instances per service, given in code.

.. code-block:: python

    discovery = Discovery([StaticBackend({"user-service": ["http://10.0.0.1:8001",
                                                           "http://10.0.0.2:8001"]})])

For a fixed fleet without a registry, and for tests that want several
instances without one. Keys are registered names (``user-service``,
``user-service-grpc``); values are URLs or, for gRPC faces, ``host:port`` targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from servicegrid.discovery.base import Instance, ServiceName, WireProtocol
from servicegrid.discovery.env import instance_from_locator

__all__ = ["StaticBackend"]


class StaticBackend:
    """Instances listed up front; ValueError at construction for a locator that is not one."""

    name = "static"

    def __init__(self, services: Mapping[str, Sequence[str]]) -> None:
        self._instances: dict[tuple[str, WireProtocol], list[Instance]] = {}
        for registered, locators in services.items():
            protocol: WireProtocol = (
                "grpc" if all("://" not in locator for locator in locators) and locators else "http"
            )
            self._instances[(registered, protocol)] = [
                instance_from_locator(locator, protocol) for locator in locators
            ]

    def set(self, registered: str, locators: Sequence[str], protocol: WireProtocol) -> None:
        """Replace the instances of ``registered`` (its ``protocol`` face)."""
        self._instances[(registered, protocol)] = [
            instance_from_locator(locator, protocol) for locator in locators
        ]

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        return list(self._instances.get((service.registered_as(protocol), protocol), []))

    async def aclose(self) -> None:
        return None
