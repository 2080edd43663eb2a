"""Service discovery: find a service's instances in Consul, etcd, Kubernetes DNS or the
environment, cache them, balance calls over them, and register our own services.

.. code-block:: python

    from servicegrid import discover_service_async

    url = await discover_service_async("USER_SERVICE")       # seed 002
    client = EmbeddingClient(service_url="discovery:///embedding-service")   # balanced

* :class:`Discovery`: the backends in order, a TTL cache, stale answers in need.
* :func:`discover_service_async`, :func:`discover_service`, :func:`discover_all_async`:
  seed 002's calls over the default :class:`Discovery`.
* :class:`BalancedTransport`: a transport over every instance, a breaker each.
* :func:`announced`: register a running service and keep it alive.

The backends (``ConsulBackend``, ``EtcdBackend``, ``DnsBackend``, ``EnvBackend``)
load on first use; docs/discovery.md describes each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicegrid._lazy import lazy_exports
from servicegrid.discovery.base import (
    Answer,
    Backend,
    Instance,
    Registrar,
    Registration,
    ServiceName,
    WireProtocol,
)
from servicegrid.discovery.functions import (
    default_discovery,
    discover_all,
    discover_all_async,
    discover_service,
    discover_service_async,
    discovery_metadata_async,
    set_default_discovery,
)
from servicegrid.discovery.resolver import Discovery, backends_from_settings

if TYPE_CHECKING:
    from servicegrid.discovery.balancer import BalancedTransport
    from servicegrid.discovery.consul import ConsulBackend
    from servicegrid.discovery.dns import DnsBackend
    from servicegrid.discovery.env import EnvBackend
    from servicegrid.discovery.etcd import EtcdBackend
    from servicegrid.discovery.registration import announced
    from servicegrid.discovery.static import StaticBackend
    from servicegrid.discovery.urls import is_discovery_url

__all__ = [
    "Answer",
    "Backend",
    "BalancedTransport",
    "ConsulBackend",
    "Discovery",
    "DnsBackend",
    "EnvBackend",
    "EtcdBackend",
    "Instance",
    "Registrar",
    "Registration",
    "ServiceName",
    "StaticBackend",
    "WireProtocol",
    "announced",
    "backends_from_settings",
    "default_discovery",
    "discover_all",
    "discover_all_async",
    "discover_service",
    "discover_service_async",
    "discovery_metadata_async",
    "is_discovery_url",
    "set_default_discovery",
]

_LAZY = {
    "BalancedTransport": "servicegrid.discovery.balancer",
    "is_discovery_url": "servicegrid.discovery.urls",
    "ConsulBackend": "servicegrid.discovery.consul",
    "DnsBackend": "servicegrid.discovery.dns",
    "EnvBackend": "servicegrid.discovery.env",
    "EtcdBackend": "servicegrid.discovery.etcd",
    "announced": "servicegrid.discovery.registration",
    "StaticBackend": "servicegrid.discovery.static",
}

__getattr__ = lazy_exports(__name__, _LAZY)
