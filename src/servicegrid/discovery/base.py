"""What discovery deals in: a service's name, its instances, an answer, and the backend seam.

.. code-block:: python

    name = ServiceName.parse("USER_SERVICE")      # or "user-service", or "users"
    name.env_prefix, name.discovery_name          # "USER_SERVICE", "user-service"
    name.registered_as("grpc")                    # "user-service-grpc"

A :class:`Backend` answers one question: which healthy instances of this
service, for this protocol, does it know? An empty list means "not here"
(the next backend is asked); a :class:`~servicegrid.errors.DiscoveryError`
means it could not answer (unreachable, a malformed answer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, Protocol, runtime_checkable

from servicegrid import catalogue
from servicegrid.catalogue import ServiceSpec
from servicegrid.errors import ValidationError, field_error

__all__ = [
    "Answer",
    "Backend",
    "Instance",
    "Registrar",
    "Registration",
    "ServiceName",
    "WireProtocol",
]

WireProtocol = Literal["http", "grpc"]
"""Which face of a service is asked for: its HTTP URL or its gRPC target."""

_NAME: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")
_GRPC_SUFFIX: Final = "-grpc"
_NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})


def _bad_name(text: object, why: str) -> ValidationError:
    return ValidationError(
        f"{text!r} is not a service name: {why}",
        validation_errors=[field_error("name", why, "value_error")],
    )


@dataclass(frozen=True, slots=True)
class ServiceName:
    """One service as discovery names it.

    ``env_prefix`` finds it in the environment (``USER_SERVICE_URL``),
    ``discovery_name`` in Consul, etcd and Kubernetes (``user-service``; a
    per-service override may change it). ``spec`` is its catalogue entry, if any.
    """

    env_prefix: str
    discovery_name: str
    spec: ServiceSpec | None = None

    @classmethod
    def parse(cls, text: object, overrides: Mapping[str, str] | None = None) -> ServiceName:
        """The service called ``text``: an env prefix, a discovery name or a catalogue name.

        ``overrides`` maps an env prefix (or any name of the service) to the
        discovery name to use instead. Raises :class:`ValidationError` for a
        string that cannot name a service.
        """
        if not isinstance(text, str):
            raise _bad_name(text, "expected a string")
        name = text.strip()
        if not _NAME.match(name):
            raise _bad_name(text, "use letters, digits, '-', '_' and '.', 1 to 253 of them")
        try:
            spec: ServiceSpec | None = catalogue.lookup(name)
        except KeyError:
            spec = None
        if spec is not None:
            prefix, discovery = spec.env_prefix, spec.discovery_name
        elif "_" in name or name.isupper():
            prefix, discovery = name.upper(), name.lower().replace("_", "-")
        else:
            prefix, discovery = name.upper().replace("-", "_").replace(".", "_"), name.lower()
        for key in (name, prefix, discovery, *(spec.names() if spec else ())):
            override = (overrides or {}).get(key) or (overrides or {}).get(key.upper())
            if override:
                discovery = override
                break
        return cls(prefix, discovery, spec)

    @property
    def has_both_protocols(self) -> bool:
        """An HTTP service that also serves gRPC, registered a second time as ``<name>-grpc``."""
        return self.spec is not None and not self.spec.is_grpc and self.spec.grpc_port is not None

    def registered_as(self, protocol: WireProtocol) -> str:
        """The name its ``protocol`` face is registered under in Consul, etcd and DNS."""
        if protocol == "grpc" and self.has_both_protocols:
            return self.discovery_name + _GRPC_SUFFIX
        if (
            protocol == "grpc"
            and self.spec is None
            and not self.discovery_name.endswith(_GRPC_SUFFIX)
        ):
            # an unknown service: its gRPC face is "<name>-grpc", as for the catalogue's own
            return self.discovery_name + _GRPC_SUFFIX
        return self.discovery_name

    def __str__(self) -> str:
        return self.discovery_name


@dataclass(frozen=True, slots=True)
class Instance:
    """One running instance: where it listens, and how it was found.

    ``scheme`` is ``http``, ``https`` or ``grpc``; ``path`` a base path an HTTP
    service serves under (``/api``). ``id`` tells instances apart in a registry.
    """

    host: str
    port: int
    scheme: str = "http"
    path: str = ""
    id: str = ""
    metadata: Mapping[str, str] = field(
        default_factory=lambda: _NO_METADATA, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not self.host or any(c in self.host for c in " /\\?#@"):
            raise ValueError(f"instance host {self.host!r} is not a host name or address")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"instance port must be in 1..65535, got {self.port!r}")

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port/path`` (the scheme ``http`` for a gRPC instance too)."""
        scheme = "http" if self.scheme == "grpc" else self.scheme
        return f"{scheme}://{self.address}{self.path}"

    def locator(self, protocol: WireProtocol) -> str:
        """The gRPC target ``host:port`` or the HTTP URL, as ``protocol`` asks."""
        return self.address if protocol == "grpc" else self.url


@dataclass(frozen=True, slots=True)
class Answer:
    """What discovery found for one service and protocol, and how fresh it is.

    ``backend`` answered (``consul``, ``etcd``, ``dns``, ``env``); ``found_at``
    is the clock's time it did; ``stale`` marks an answer older than the TTL
    served because every backend failed.
    """

    service: ServiceName
    protocol: WireProtocol
    instances: tuple[Instance, ...]
    backend: str
    found_at: float
    stale: bool = False

    @property
    def locators(self) -> list[str]:
        """Each instance's URL (HTTP) or target (gRPC)."""
        return [instance.locator(self.protocol) for instance in self.instances]

    def metadata(self, now: float) -> dict[str, object]:
        """Which backend answered, how old the answer is (seconds), how many instances, stale."""
        return {
            "service": self.service.registered_as(self.protocol),
            "protocol": self.protocol,
            "backend": self.backend,
            "age_seconds": max(now - self.found_at, 0.0),
            "instances": len(self.instances),
            "stale": self.stale,
        }


@runtime_checkable
class Backend(Protocol):
    """One place services are found: Consul, etcd, DNS, the environment."""

    name: str

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        """Every healthy instance of ``service``'s ``protocol`` face; [] when it knows none.

        Raises :class:`~servicegrid.errors.DiscoveryError` when it cannot answer.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class Registration:
    """One instance to register: under ``name``, reachable at ``host:port``.

    ``check`` says how the registry learns it is alive: ``"ttl"`` (renewed
    while it runs), ``"grpc"`` or ``"http"`` (the registry probes it at
    ``health_path``). ``ttl`` is in seconds.
    """

    name: str
    host: str
    port: int
    protocol: WireProtocol
    id: str
    path: str = ""
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(
        default_factory=lambda: _NO_METADATA, compare=False, hash=False
    )
    ttl: float = 10.0
    health_path: str = "/health"

    @property
    def scheme(self) -> str:
        return "grpc" if self.protocol == "grpc" else "http"


@runtime_checkable
class Registrar(Protocol):
    """Registers instances in a registry (Consul, etcd) and keeps them alive until removed."""

    name: str

    async def register(self, registration: Registration) -> None:
        """Register and start keeping it alive (TTL passes, a lease renewal)."""
        ...

    async def deregister(self, registration: Registration) -> None:
        """Stop keeping it alive and remove it; idempotent, never raises for a missing entry."""
        ...
