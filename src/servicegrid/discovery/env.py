"""The environment backend: seed 002's fallback, always configured, asked last by default.

It answers from the settings taken at start, never from ``os.environ`` at call time:

* gRPC: ``<PREFIX>_GRPC_TARGET`` (``USER_SERVICE_GRPC_TARGET``), else a model
  service's ``<PREFIX>_URL`` (``EMBEDDING_SERVICE_URL``), else the catalogue's
  default port on localhost;
* HTTP: ``<PREFIX>_URL`` (``USER_SERVICE_URL``, ``CHROMA_SERVER_URL``...), else
  the catalogue's default address (``http://localhost:8001``).

A service neither set nor in the catalogue is not known here ([]). A value that
itself points at discovery (``discovery:///...``) is skipped, so a lookup can
never chase its own tail.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from servicegrid.discovery.base import Instance, ServiceName, WireProtocol
from servicegrid.errors import DiscoveryError
from servicegrid.settings import Settings, http_service_name

__all__ = ["EnvBackend", "instance_from_locator"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def instance_from_locator(locator: str, protocol: WireProtocol) -> Instance:
    """An :class:`Instance` from a gRPC target (``host:port``) or an HTTP URL.

    Raises ValueError for one that names no single host and port (``unix:...``).
    """
    text = locator.strip()
    if protocol == "grpc":
        text = text.removeprefix("grpc://").removeprefix("dns:///").rstrip("/")
        parts = urlsplit(f"//{text}")
        if parts.hostname is None or parts.port is None or parts.path:
            raise ValueError(f"{locator!r} is not a host:port gRPC target")
        return Instance(parts.hostname, parts.port, "grpc")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.hostname is None:
        raise ValueError(f"{locator!r} is not an http(s) URL")
    port = parts.port or _DEFAULT_PORTS[scheme]
    return Instance(parts.hostname, port, scheme, parts.path.rstrip("/"))


class EnvBackend:
    """Services from ``settings``: see the module docstring."""

    name = "env"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def locate(self, service: ServiceName, protocol: WireProtocol) -> str | None:
        """The configured (or catalogue default) URL or target, or None."""
        settings, spec = self._settings, service.spec
        if protocol == "grpc":
            target = settings.grpc_targets.get(service.env_prefix)
            if target:
                return target
            if spec is not None and spec.is_grpc:
                return settings.address_of(spec.name)
            if spec is not None and spec.grpc_port is not None:
                return f"localhost:{spec.grpc_port}"
            return None
        if spec is not None and not spec.is_grpc:
            return settings.address_of(spec.name)
        key = http_service_name(f"{service.env_prefix}_URL")
        if key is not None and key in settings.http_services:
            return settings.http_services[key]
        return None

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        locator = self.locate(service, protocol)
        if locator is None or locator.startswith("discovery:"):
            return []
        try:
            return [instance_from_locator(locator, protocol)]
        except ValueError as error:
            raise DiscoveryError(
                f"the environment gives {service.env_prefix} as {locator!r}, which discovery "
                f"cannot balance over: {error}",
                service=str(service),
            ) from error

    async def aclose(self) -> None:
        return None
