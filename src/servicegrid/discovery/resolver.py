"""``Discovery``: ask the backends in order, cache answers for a TTL, serve stale ones only in need.

.. code-block:: python

    discovery = Discovery.from_settings(load_settings())
    answer = await discovery.resolve("USER_SERVICE")       # an Answer: instances, backend, age
    answer.locators                                        # ["http://10.0.0.7:8001", ...]
    await discovery.aclose()

For each (service, protocol) the rule is:

1. a cached answer younger than ``ttl`` seconds is returned as it is;
2. otherwise each backend is asked in order, each for at most ``timeout``
   seconds; the first that knows instances answers (and is cached);
3. when none does and at least one *failed*, a cached answer younger than
   ``max_stale`` seconds is returned marked ``stale``; otherwise
   :class:`~servicegrid.errors.DiscoveryError` (some backend failed) or
   :class:`~servicegrid.errors.UnknownServiceError` (every backend answered
   that it knows no such service) says what each backend said.

So no lookup takes longer than the number of backends times ``timeout``.
Concurrent lookups of one name on one event loop share a single round of
backend questions. A backend that can watch (etcd) is asked to, and a change
it reports drops the cached answer at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.base import Answer, Backend, ServiceName, WireProtocol
from servicegrid.errors import DiscoveryError, UnknownServiceError
from servicegrid.settings import Settings

__all__ = ["Discovery", "backends_from_settings", "configured_backend"]

_log = logging.getLogger("servicegrid.discovery")

_Key = tuple[str, WireProtocol]

DEFAULT_TTL: Final = 30.0
DEFAULT_MAX_STALE: Final = 300.0
DEFAULT_TIMEOUT: Final = 2.0
_MAX_NAMES: Final = 1024


def configured_backend(settings: Settings, kind: str) -> Backend | None:
    """The backend ``kind`` (``consul``, ``etcd``, ``dns``, ``env``) as ``settings`` configure
    it, or None when they do not: Consul needs ``CONSUL_HOST``, etcd ``ETCD_HOST``, DNS
    ``USE_ISTIO_DNS=true``; the environment is always there."""
    timeout = settings.discovery_timeout
    if kind == "consul" and settings.consul_host:
        from servicegrid.discovery.consul import ConsulBackend

        return ConsulBackend(
            settings.consul_host, settings.consul_port, token=settings.consul_token, timeout=timeout
        )
    if kind == "etcd" and settings.etcd_host:
        from servicegrid.discovery.etcd import EtcdBackend

        return EtcdBackend(
            settings.etcd_host, settings.etcd_port, prefix=settings.etcd_prefix, timeout=timeout
        )
    if kind == "dns" and settings.use_istio_dns:
        from servicegrid.discovery.dns import DnsBackend

        server = None
        if settings.dns_server:
            host, _, port = settings.dns_server.rpartition(":")
            server = (host.strip("[]"), int(port))
        return DnsBackend(settings.k8s_namespace, server=server, timeout=timeout)
    if kind == "env":
        from servicegrid.discovery.env import EnvBackend

        return EnvBackend(settings)
    return None


def backends_from_settings(settings: Settings) -> list[Backend]:
    """The configured backends, in ``SERVICEGRID_DISCOVERY_ORDER``."""
    found = (configured_backend(settings, kind) for kind in settings.discovery_order)
    return [backend for backend in found if backend is not None]


class Discovery:
    """Finds services through ``backends``; see the module docstring. Seconds throughout.

    ``overrides`` maps a service (env prefix or any of its names) to the name
    it is registered under (``SERVICEGRID_DISCOVERY_NAMES``).
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        ttl: float = DEFAULT_TTL,
        max_stale: float = DEFAULT_MAX_STALE,
        timeout: float = DEFAULT_TIMEOUT,
        overrides: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ttl <= 0 or timeout <= 0 or max_stale < 0:
            raise ValueError("ttl and timeout must be above zero, max_stale at least zero")
        self.backends: tuple[Backend, ...] = tuple(backends)
        self.ttl = ttl
        self.max_stale = max_stale
        self.timeout = timeout
        self.overrides: Mapping[str, str] = dict(overrides or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[_Key, Answer] = {}
        self._names: dict[str, ServiceName] = {}
        self._inflight: dict[tuple[_Key, asyncio.AbstractEventLoop], asyncio.Task[Answer]] = {}
        self._watched: set[tuple[_Key, str, asyncio.AbstractEventLoop]] = set()
        self.lookups = 0
        self.cache_hits = 0
        self.stale_answers = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Discovery:
        """The backends, TTLs and names that ``settings`` configure."""
        return cls(
            backends_from_settings(settings),
            ttl=settings.discovery_ttl,
            max_stale=settings.discovery_max_stale,
            timeout=settings.discovery_timeout,
            overrides=settings.discovery_names,
            clock=clock,
        )

    # ---- names -------------------------------------------------------------------------

    def name(self, service: str | ServiceName) -> ServiceName:
        """``service`` as a :class:`ServiceName`; ValidationError for one that cannot be a name."""
        if isinstance(service, ServiceName):
            return service
        name = self._names.get(service)
        if name is None:
            name = ServiceName.parse(service, self.overrides)
            if len(self._names) < _MAX_NAMES:  # bounded: names may come from callers
                self._names[service] = name
        return name

    @staticmethod
    def protocol_of(service: ServiceName, protocol: WireProtocol | None) -> WireProtocol:
        """``protocol``, or the service's own: gRPC for a model service, else HTTP."""
        if protocol is not None:
            if protocol not in ("http", "grpc"):
                raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
            return protocol
        return "grpc" if service.spec is not None and service.spec.is_grpc else "http"

    # ---- lookups -----------------------------------------------------------------------

    def cached(
        self, service: str | ServiceName, protocol: WireProtocol | None = None
    ) -> Answer | None:
        """The cached answer if it is younger than the TTL, else None; asks no backend."""
        name = self.name(service)
        wire = self.protocol_of(name, protocol)
        answer = self._cache.get((name.registered_as(wire), wire))
        if answer is not None and self._clock.now() - answer.found_at < self.ttl:
            self.cache_hits += 1
            return answer
        return None

    async def resolve(
        self, service: str | ServiceName, protocol: WireProtocol | None = None
    ) -> Answer:
        """Every instance of ``service`` (see the module docstring for the rule)."""
        name = self.name(service)
        wire = self.protocol_of(name, protocol)
        key: _Key = (name.registered_as(wire), wire)
        self.lookups += 1
        answer = self._cache.get(key)
        if answer is not None and self._clock.now() - answer.found_at < self.ttl:
            self.cache_hits += 1
            return answer
        loop = asyncio.get_running_loop()
        flight_key = (key, loop)
        flight = self._inflight.get(flight_key)
        if flight is None:
            # one round of questions per name and loop, in a task of its own: a caller that
            # is cancelled leaves it running for the others
            flight = loop.create_task(self._ask_backends(name, wire, key))
            self._inflight[flight_key] = flight
            flight.add_done_callback(lambda done: self._landed(flight_key, done))
        return await asyncio.shield(flight)

    def _landed(
        self, flight_key: tuple[_Key, asyncio.AbstractEventLoop], flight: asyncio.Task[Answer]
    ) -> None:
        self._inflight.pop(flight_key, None)
        if not flight.cancelled():
            flight.exception()  # retrieved here, so one whose callers all left is not logged

    async def _ask_backends(self, name: ServiceName, wire: WireProtocol, key: _Key) -> Answer:
        said: list[str] = []
        failed = False
        for backend in self.backends:
            try:
                async with asyncio.timeout(self.timeout):
                    instances = await backend.lookup(name, wire)
            except TimeoutError:
                failed = True
                said.append(f"{backend.name}: no answer within {self.timeout:g} s")
                continue
            except DiscoveryError as error:
                failed = True
                said.append(f"{backend.name}: {error.message}")
                continue
            except Exception as error:  # a backend's bug must not end the lookup
                _log.warning("discovery backend %s failed", backend.name, exc_info=True)
                failed = True
                said.append(f"{backend.name}: {type(error).__name__}: {error}")
                continue
            if not instances:
                said.append(f"{backend.name}: no instances")
                continue
            answer = Answer(name, wire, tuple(instances), backend.name, self._clock.now())
            with self._lock:
                self._cache[key] = answer
            self._watch(backend, name, wire, key)
            return answer
        return self._without_an_answer(name, key, said, failed)

    def _without_an_answer(
        self, name: ServiceName, key: _Key, said: list[str], failed: bool
    ) -> Answer:
        registered = key[0]
        summary = "; ".join(said) if said else "no discovery backend is configured"
        old = self._cache.get(key)
        if failed and old is not None and self._clock.now() - old.found_at <= self.max_stale:
            self.stale_answers += 1
            _log.warning("discovery of %s failed (%s); serving a stale answer", registered, summary)
            return replace(old, stale=True)
        if failed:
            raise DiscoveryError(f"could not discover {registered}: {summary}", service=registered)
        raise UnknownServiceError(
            f"no instance of {registered!r} is known ({summary}); check the name, or set "
            f"{name.env_prefix}_URL or {name.env_prefix}_GRPC_TARGET",
            service=registered,
        )

    def _watch(self, backend: Backend, name: ServiceName, wire: WireProtocol, key: _Key) -> None:
        watch = getattr(backend, "watch", None)
        if watch is None:
            return
        loop = asyncio.get_running_loop()
        marker = (key, backend.name, loop)
        if marker in self._watched:
            return
        # loops that ended (one per blocking lookup from synchronous code) watch nothing now
        self._watched = {m for m in self._watched if not m[2].is_closed()}
        self._watched.add(marker)
        try:
            watch(name, wire, lambda: self.invalidate(key))
        except Exception:
            _log.warning("could not watch %s in %s", key[0], backend.name, exc_info=True)
            self._watched.discard(marker)

    def invalidate(self, key: _Key | None = None) -> None:
        """Forget one cached answer (by ``(registered name, protocol)``), or all of them."""
        with self._lock:
            if key is None:
                self._cache.clear()
            else:
                self._cache.pop(key, None)

    def metadata(self, answer: Answer) -> dict[str, object]:
        """``answer``'s metadata, its age measured now."""
        return answer.metadata(self._clock.now())

    async def aclose(self) -> None:
        """Close every backend; idempotent."""
        for backend in self.backends:
            try:
                await backend.aclose()
            except Exception:
                _log.warning("closing discovery backend %s failed", backend.name, exc_info=True)

    def __repr__(self) -> str:
        names = ",".join(backend.name for backend in self.backends)
        return f"Discovery([{names}], ttl={self.ttl:g})"
