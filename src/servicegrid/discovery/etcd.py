"""The etcd backend: instances as leased keys under one prefix, found, kept alive and watched.

Key layout (public: anything that writes these keys is discoverable)::

    {prefix}{registered_name}/{instance_id}  →  {"host": "10.0.0.7", "port": 8001,
                                                 "scheme": "http", "path": "",
                                                 "metadata": {"zone": "a"}}

``prefix`` defaults to ``/servicegrid/services/``; ``registered_name`` is
:meth:`ServiceName.registered_as` (``user-service``, ``user-service-grpc``);
``scheme`` is ``http``, ``https`` or ``grpc`` (default: ``grpc`` for a gRPC
face, else ``http``); ``path`` and ``metadata`` may be left out. A
registration's key is bound to a lease of its TTL, renewed every TTL/3 seconds
while the registering process lives, so a dead instance's key goes away on its own.

aetcd clients belong to the event loop that opened them, so there is one per
loop (:class:`~servicegrid.transports.loop_local.LoopLocal`); keep-alives and
watches run as tasks on the loop that started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import aetcd  # type: ignore[import-untyped]
import grpc

from servicegrid._validate import check_number
from servicegrid.discovery.base import Instance, Registration, ServiceName, WireProtocol
from servicegrid.errors import ClientStateError, DiscoveryError
from servicegrid.resilience.backoff import ExponentialBackoff
from servicegrid.transports.loop_local import LoopLocal

__all__ = ["DEFAULT_PREFIX", "EtcdBackend"]

T = TypeVar("T")

DEFAULT_PREFIX: Final = "/servicegrid/services/"
_SCHEMES: Final = frozenset({"http", "https", "grpc"})
_WATCH_RETRY: Final = ExponentialBackoff(initial=0.2, max=5.0)
# gRPC's default reconnect backoff grows to 120 s: an etcd back after a long outage would
# go unnoticed (keep-alives failing fast on a channel still backing off) for minutes.
_CHANNEL_OPTIONS: Final = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}
_UNREACHABLE: Final = (TimeoutError, aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError)

_log = logging.getLogger("servicegrid.discovery")


class _Malformed(ValueError):
    """A value under the prefix that is not an instance."""


@dataclass(slots=True)
class _Kept:
    """One registration being kept alive: its name, key, value, lease and keep-alive task."""

    name: str
    key: str
    value: bytes
    ttl: int
    lease: int
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Watched:
    """One watched name on one loop: who to tell, and the task that watches."""

    callbacks: list[Callable[[], None]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def _instance(key: str, raw: bytes, service_prefix: str) -> Instance:
    """The instance stored at ``key``; raises :class:`_Malformed` saying what is wrong."""
    instance_id = key[len(service_prefix) :]
    if not instance_id or "/" in instance_id:
        raise _Malformed(f"the key is not {service_prefix}<instance id>")
    try:
        value = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _Malformed(f"the value is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _Malformed(f"the value is a JSON {type(value).__name__}, not an object")
    host, port = value.get("host"), value.get("port")
    if not isinstance(host, str) or not host:
        raise _Malformed(f"'host' must be a non-empty string, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _Malformed(f"'port' must be an integer in 1..65535, got {port!r}")
    scheme = value.get("scheme", "grpc" if service_prefix.endswith("-grpc/") else "http")
    if scheme not in _SCHEMES:
        raise _Malformed(f"'scheme' must be one of {sorted(_SCHEMES)}, got {scheme!r}")
    path = value.get("path", "")
    if not isinstance(path, str):
        raise _Malformed(f"'path' must be a string, got {path!r}")
    metadata = value.get("metadata", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _Malformed(f"'metadata' must map strings to strings, got {metadata!r}")
    try:
        return Instance(host, port, scheme, path, instance_id, metadata)
    except ValueError as exc:
        raise _Malformed(str(exc)) from None


def _not_found(exc: BaseException) -> bool:
    """aetcd raises a bare ClientError for NOT_FOUND (a lease already gone)."""
    cause = exc.__cause__
    return isinstance(cause, grpc.aio.AioRpcError) and cause.code() == grpc.StatusCode.NOT_FOUND


_STOP_TRIES = 20
_STOP_WAIT = 0.25  # seconds


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` on its own loop; wait for it only when that is the running one."""
    if task is None or task.done():
        return
    loop = task.get_loop()
    if loop is asyncio.get_running_loop():
        # aetcd's watcher swallows a CancelledError now and then (it cancels and awaits its own
        # stream handler): cancel again until the task ends, each wait bounded
        for _ in range(_STOP_TRIES):
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=_STOP_WAIT)
            if done:
                return
        _log.warning("an etcd task (%s) would not stop", task.get_name())
    elif not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # it closed meanwhile, ending the task
            loop.call_soon_threadsafe(task.cancel)


class EtcdBackend:
    """Finds, registers and watches instances in etcd at ``host:port``; see the module docstring.

    Each etcd call is bounded by ``timeout`` seconds. Implements
    :class:`~servicegrid.discovery.base.Backend` and ``Registrar``.
    """

    name = "etcd"

    def __init__(
        self,
        host: str,
        port: int = 2379,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.timeout = check_number("timeout", timeout, inclusive=False)
        self._clients: LoopLocal[Any] = LoopLocal(
            self._open_client, _close_client, what=f"etcd at {self.address}"
        )
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}
        self._watched: dict[tuple[asyncio.AbstractEventLoop, str], _Watched] = {}
        self._rng = random.Random()
        self._closed = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"EtcdBackend({self.address!r}, prefix={self.prefix!r})"

    # ---- lookup ------------------------------------------------------------------------

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        """Every instance under ``{prefix}{registered name}/``, sorted by id; [] when none.

        A malformed entry is logged and left out; when every entry is malformed,
        :class:`~servicegrid.errors.DiscoveryError` names them. So does an etcd
        that cannot be reached within ``timeout``.
        """
        name = service.registered_as(protocol)
        service_prefix = self._service_prefix(name)
        found = await self._call(
            f"read {service_prefix}",
            name,
            lambda client: client.get_prefix(service_prefix.encode()),
        )
        instances: list[Instance] = []
        malformed: list[str] = []
        for kv in found:
            key = bytes(kv.key).decode(errors="replace")
            try:
                instances.append(_instance(key, bytes(kv.value), service_prefix))
            except _Malformed as exc:
                malformed.append(f"{key}: {exc}")
        for problem in malformed:
            _log.warning("etcd at %s has a malformed instance at %s", self.address, problem)
        if malformed and not instances:
            raise DiscoveryError(
                f"etcd at {self.address} has only malformed instances of {name}: "
                + "; ".join(malformed),
                service=name,
                details={"malformed": malformed},
            )
        return sorted(instances, key=lambda instance: instance.id)

    # ---- registration ------------------------------------------------------------------

    async def register(self, registration: Registration) -> None:
        """Put the instance under a lease of its TTL (whole seconds, at least 1) and keep it alive.

        ``registration.name`` is the registered name (``user-service-grpc``), as
        :meth:`ServiceName.registered_as` gives it. Registering the same name and id
        again replaces the entry. Raises DiscoveryError when etcd cannot be reached.
        """
        key = self._key(registration)
        value = json.dumps(
            {
                "host": registration.host,
                "port": registration.port,
                "scheme": registration.scheme,
                "path": registration.path,
                "metadata": dict(registration.metadata),
            }
        ).encode()
        ttl = max(1, math.ceil(check_number("Registration.ttl", registration.ttl, inclusive=False)))
        loop = asyncio.get_running_loop()
        lease = await self._lease_and_put(registration.name, key, value, ttl)
        kept = _Kept(registration.name, key, value, ttl, lease)
        kept.task = loop.create_task(self._keep_alive(kept), name=f"etcd keep-alive {key}")
        with self._lock:
            old = self._kept.pop(key, None)
            self._kept[key] = kept
        if old is not None:
            await _stop(old.task)
            if old.lease != lease:
                await self._revoke(old)

    async def deregister(self, registration: Registration) -> None:
        """Stop the keep-alive, revoke the lease and delete the key; idempotent, never raises."""
        key = self._key(registration)
        with self._lock:
            kept = self._kept.pop(key, None)
        if kept is not None:
            await _stop(kept.task)
            await self._revoke(kept)
        # the key may outlive the revoke: registered by another process, or put by a
        # keep-alive cancelled between re-granting its lease and recording it
        try:
            await self._call(f"delete {key}", registration.name, lambda c: c.delete(key.encode()))
        except (DiscoveryError, ClientStateError) as exc:
            _log.warning("deregistering %s: %s", registration.id, exc.message)

    async def _lease_and_put(self, name: str, key: str, value: bytes, ttl: int) -> int:
        lease = await self._call(f"grant a lease for {key}", name, lambda c: c.lease(ttl))
        lease_id = int(lease.id)
        await self._call(f"put {key}", name, lambda c: c.put(key.encode(), value, lease=lease_id))
        return lease_id

    async def _revoke(self, kept: _Kept) -> None:
        lease = kept.lease
        try:
            await self._call(
                f"revoke the lease of {kept.key}", kept.name, lambda c: c.revoke_lease(lease)
            )
        except DiscoveryError as exc:
            if exc.__cause__ is None or not _not_found(exc.__cause__):
                _log.warning("deregistering: %s", exc.message)
        except ClientStateError:
            pass  # closed: the lease expires on its own

    async def _keep_alive(self, kept: _Kept) -> None:
        """Renew ``kept``'s lease every TTL/3 s; grant a new one and put again if it is gone."""
        while True:
            await asyncio.sleep(kept.ttl / 3)
            try:
                answer = await self._call(
                    f"renew the lease of {kept.key}",
                    kept.name,
                    lambda c: c.refresh_lease(kept.lease),
                )
                if answer is not None and int(answer.TTL) > 0:
                    continue
                # TTL 0: etcd no longer knows the lease (expired, or etcd lost its data)
                kept.lease = await self._lease_and_put(kept.name, kept.key, kept.value, kept.ttl)
                _log.warning("etcd lost the lease of %s; registered it again", kept.key)
            except ClientStateError:
                return
            except DiscoveryError as exc:  # keep trying: the lease may outlive the outage
                _log.warning("keep-alive: %s", exc.message)
            except Exception:
                _log.exception("keep-alive of %s in etcd failed", kept.key)

    # ---- watching ----------------------------------------------------------------------

    def watch(
        self, service: ServiceName, protocol: WireProtocol, on_change: Callable[[], None]
    ) -> None:
        """Call ``on_change()`` whenever an instance of ``service`` is put or deleted.

        Starts one watching task per registered name and event loop (call from a
        coroutine); a broken watch is re-opened with a capped backoff, and
        ``on_change`` is called once more then, as changes may have been missed.
        """
        loop = asyncio.get_running_loop()
        if self._closed:
            raise ClientStateError(f"etcd at {self.address}: the backend is closed")
        name = service.registered_as(protocol)
        with self._lock:
            for gone in [k for k in self._watched if k[0].is_closed()]:
                del self._watched[gone]
            watched = self._watched.setdefault((loop, name), _Watched())
            if on_change not in watched.callbacks:
                watched.callbacks.append(on_change)
            if watched.task is None or watched.task.done():
                watched.task = loop.create_task(
                    self._follow(name, watched), name=f"etcd watch {name}"
                )

    async def _follow(self, name: str, watched: _Watched) -> None:
        service_prefix = self._service_prefix(name)
        failures = 0
        while not self._closed:
            try:
                stream = await self._call(
                    f"watch {service_prefix}",
                    name,
                    lambda c: c.watch_prefix(service_prefix.encode()),
                )
                try:
                    if failures:
                        _notify(watched, name)
                    failures = 0
                    async for _event in stream:
                        _notify(watched, name)
                finally:
                    await self._cancel_watch(stream)
            except ClientStateError:
                return
            except DiscoveryError as exc:
                _log.warning("watch: %s", exc.message)
            except aetcd.ClientError as exc:  # the open stream broke: etcd went away
                _log.warning("watching %s in etcd at %s: %s", service_prefix, self.address, exc)
            except Exception:
                _log.exception("watching %s in etcd failed", service_prefix)
            failures += 1
            await asyncio.sleep(_WATCH_RETRY.delay(failures, self._rng))

    async def _cancel_watch(self, stream: Any) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await stream.cancel()
        except Exception:  # the stream or the client is already gone
            _log.debug("cancelling an etcd watch failed", exc_info=True)

    # ---- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop keep-alives and watches and close the clients; idempotent.

        Registrations not deregistered are left to expire with their leases.
        """
        self._closed = True
        with self._lock:
            tasks = [kept.task for kept in self._kept.values()]
            tasks += [watched.task for watched in self._watched.values()]
            self._kept.clear()
            self._watched.clear()
        for task in tasks:
            await _stop(task)
        await self._clients.aclose()

    # ---- plumbing ----------------------------------------------------------------------

    def _service_prefix(self, registered_name: str) -> str:
        return f"{self.prefix}{registered_name}/"

    def _key(self, registration: Registration) -> str:
        for what, text in (("name", registration.name), ("id", registration.id)):
            if not text or "/" in text:
                raise ValueError(f"registration {what} must be non-empty without '/': {text!r}")
        return f"{self._service_prefix(registration.name)}{registration.id}"

    def _open_client(self) -> Any:
        return aetcd.Client(
            host=self.host, port=self.port, timeout=self.timeout, options=_CHANNEL_OPTIONS
        )

    async def _call(self, what: str, service: str, op: Callable[[Any], Awaitable[T]]) -> T:
        """``op(client)`` within ``timeout``; etcd's failures become DiscoveryError."""
        client = self._clients.get()
        try:
            async with asyncio.timeout(self.timeout):
                return await op(client)
        except _UNREACHABLE as exc:
            why = f"no answer within {self.timeout:g} s" if isinstance(exc, TimeoutError) else exc
            raise DiscoveryError(
                f"etcd at {self.address} could not be reached to {what}: {why}", service=service
            ) from exc
        except aetcd.ClientError as exc:
            raise DiscoveryError(
                f"etcd at {self.address} failed to {what}: {exc}", service=service
            ) from exc


async def _close_client(client: Any) -> None:
    await client.close()


def _notify(watched: _Watched, name: str) -> None:
    for callback in list(watched.callbacks):
        try:
            callback()
        except Exception:  # one listener's bug must not end the watch
            _log.warning("a change callback for %s failed", name, exc_info=True)
