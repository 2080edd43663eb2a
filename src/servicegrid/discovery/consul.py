"""The Consul backend: healthy instances from a Consul agent, and TTL-checked registration.

.. code-block:: python

    consul = ConsulBackend(settings.consul_host, token=settings.consul_token)
    await consul.lookup(ServiceName.parse("users"), "grpc")   # user-service-grpc, passing only
    await consul.register(Registration("user-service", "10.0.0.5", 8001, "http", "users-1"))

``lookup`` asks ``GET /v1/health/service/<name>?passing=true``: each entry is
one instance at ``Service.Address`` (``Node.Address`` when that is empty) and
``Service.Port``, with ``Service.Meta`` as its metadata (``scheme`` and
``path`` read from there). ``register`` puts the service with a TTL check
(``service:<ID>``), passes it at once and then every ``ttl / 3`` seconds from
a task on the running loop; an agent that forgot the service (404 on a pass,
after a restart) gets it registered again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from servicegrid._validate import check_number
from servicegrid.discovery.base import Instance, Registration, ServiceName, WireProtocol
from servicegrid.errors import DiscoveryError, ServiceError
from servicegrid.transports.base import AsyncTransport, Call, Reply
from servicegrid.transports.http1 import Http1Transport

__all__ = ["ConsulBackend"]

_log = logging.getLogger("servicegrid.discovery")

_DEREGISTER_CRITICAL_AFTER: Final = "1m"
_SHOWN_BODY: Final = 200


def _go_duration(seconds: float) -> str:
    """``seconds`` as a Go duration Consul parses: ``10s``, or ``1500ms`` for a fraction."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{max(round(seconds * 1000), 1)}ms"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class ConsulBackend:
    """A :class:`~servicegrid.discovery.base.Backend` and ``Registrar`` over a Consul agent.

    ``token`` goes out as ``X-Consul-Token``. ``timeout`` (seconds) bounds each
    request to the agent. Without ``transport`` it sends through its own
    :class:`~servicegrid.transports.http1.Http1Transport` (no proxies from the
    environment: the agent is local), which :meth:`aclose` closes; a given
    transport stays open for its owner to close.
    """

    name = "consul"

    def __init__(
        self,
        host: str,
        port: int = 8500,
        *,
        token: str | None = None,
        scheme: str = "http",
        timeout: float = 2.0,
        transport: AsyncTransport | None = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"Consul scheme must be 'http' or 'https', got {scheme!r}")
        self.timeout = check_number("ConsulBackend.timeout", timeout, inclusive=False)
        self.where = f"Consul at {_bracketed(host)}:{port}"
        self._base = f"{scheme}://{_bracketed(host)}:{port}"
        self._headers: tuple[tuple[str, str], ...] = (("X-Consul-Token", token),) if token else ()
        self._transport: AsyncTransport = transport or Http1Transport(
            trust_env=False, service="consul"
        )
        self._owns_transport = transport is None
        self._keepers: dict[str, asyncio.Task[None]] = {}

    # ---- requests ----------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, service: str, body: Any = None) -> Reply:
        """One request to the agent; DiscoveryError when no answer came within ``timeout``."""
        headers = self._headers
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers = (*headers, ("Content-Type", "application/json"))
        call = Call(method, self._base + path, headers, payload, self.timeout)
        try:
            # the transport bounds each phase; this bounds the whole exchange
            async with asyncio.timeout(self.timeout):
                return await self._transport.asend(call)
        except TimeoutError as exc:
            raise DiscoveryError(
                f"{self.where} did not answer {method} {path} within {self.timeout:g}s",
                service=service,
            ) from exc
        except ServiceError as exc:
            raise DiscoveryError(
                f"{self.where} is unreachable ({method} {path}): {exc.message}", service=service
            ) from exc

    def _refused(self, reply: Reply, what: str, service: str) -> DiscoveryError:
        body = reply.text[:_SHOWN_BODY]
        if reply.status == 403:
            body = f"the ACL token is missing or lacks the permission ({body!r})"
        else:
            body = repr(body)
        return DiscoveryError(
            f"{self.where} answered {reply.status} to {what}: {body}", service=service
        )

    # ---- lookup ------------------------------------------------------------------------

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        """The passing instances of ``service``'s ``protocol`` face; [] when Consul has none.

        Raises DiscoveryError when the agent cannot be reached, refuses, or
        answers something that is not Consul's list of health entries.
        """
        name = service.registered_as(protocol)
        path = f"/v1/health/service/{quote(name, safe='')}?passing=true"
        reply = await self._send("GET", path, service=name)
        if reply.status != 200:
            raise self._refused(reply, f"the health query for {name!r}", name)
        try:
            entries = reply.json()
        except ValueError as exc:
            raise DiscoveryError(
                f"{self.where} answered the health query for {name!r} with something "
                f"that is not JSON: {reply.text[:_SHOWN_BODY]!r}",
                service=name,
            ) from exc
        return _instances(entries, protocol, name=name, where=self.where)

    # ---- registration ------------------------------------------------------------------

    async def register(self, registration: Registration) -> None:
        """Register with a TTL check, pass it now and keep passing it every ``ttl / 3`` s.

        Raises DiscoveryError when the agent cannot be reached or refuses the
        registration or its first pass. Later passes only log their failures.
        """
        check_number("Registration.ttl", registration.ttl, inclusive=False)
        await self._stop_keeping(registration.id)
        await self._put_registration(registration)
        reply = await self._pass(registration)
        if reply.status != 200:
            raise self._refused(
                reply, f"the first TTL pass of {registration.id!r}", registration.name
            )
        self._keepers[registration.id] = asyncio.get_running_loop().create_task(
            self._keep_passing(registration), name=f"consul TTL pass {registration.id}"
        )

    async def deregister(self, registration: Registration) -> None:
        """Stop passing its check and remove it; never raises (a failure is logged)."""
        await self._stop_keeping(registration.id)
        path = f"/v1/agent/service/deregister/{quote(registration.id, safe='')}"
        try:
            reply = await self._send("PUT", path, service=registration.name)
        except DiscoveryError as exc:
            _log.warning("could not deregister %r: %s", registration.id, exc)
            return
        # 404: the agent does not know it (already removed, or restarted): nothing to do
        if reply.status not in (200, 404):
            _log.warning(
                "could not deregister %r: %s",
                registration.id,
                self._refused(reply, "the deregistration", registration.name),
            )

    async def _put_registration(self, registration: Registration) -> None:
        reply = await self._send(
            "PUT", "/v1/agent/service/register", service=registration.name, body=_body(registration)
        )
        if reply.status != 200:
            raise self._refused(
                reply, f"the registration of {registration.id!r}", registration.name
            )

    async def _pass(self, registration: Registration) -> Reply:
        check = quote(_check_id(registration), safe=":")
        return await self._send("PUT", f"/v1/agent/check/pass/{check}", service=registration.name)

    async def _keep_passing(self, registration: Registration) -> None:
        interval = registration.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                reply = await self._pass(registration)
                if reply.status == 404:
                    _log.warning(
                        "%s forgot %r (restarted?); registering it again",
                        self.where,
                        registration.id,
                    )
                    await self._put_registration(registration)
                    reply = await self._pass(registration)
                if reply.status != 200:
                    raise self._refused(reply, "the TTL pass", registration.name)
            except DiscoveryError as exc:
                _log.warning("TTL pass of %r failed: %s", registration.id, exc)
            except Exception:  # the keeper must outlive any surprise: the next pass may work
                _log.exception("TTL pass of %r failed", registration.id)

    async def _stop_keeping(self, registration_id: str) -> None:
        task = self._keepers.pop(registration_id, None)
        if task is None:
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            # wait() rather than await: the task's CancelledError is not ours to raise
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """Stop every TTL pass (the services stay registered) and close its own transport."""
        for registration_id in list(self._keepers):
            await self._stop_keeping(registration_id)
        if self._owns_transport:
            await self._transport.aclose()

    def __repr__(self) -> str:
        return f"ConsulBackend({self._base!r}, keeping={sorted(self._keepers)})"


def _check_id(registration: Registration) -> str:
    return f"service:{registration.id}"


def _body(registration: Registration) -> dict[str, Any]:
    """The agent's service definition: the instance, its metadata and its TTL check."""
    meta = dict(registration.metadata)
    meta.setdefault("scheme", registration.scheme)
    meta["path"] = registration.path
    return {
        "ID": registration.id,
        "Name": registration.name,
        "Address": registration.host,
        "Port": registration.port,
        "Tags": list(registration.tags),
        "Meta": meta,
        "Check": {
            "CheckID": _check_id(registration),
            "Name": f"{registration.name} TTL",
            "TTL": _go_duration(registration.ttl),
            "DeregisterCriticalServiceAfter": _DEREGISTER_CRITICAL_AFTER,
        },
    }


def _instances(entries: object, protocol: WireProtocol, *, name: str, where: str) -> list[Instance]:
    """The instances in Consul's health entries; DiscoveryError saying what is wrong with them."""

    def malformed(why: str) -> DiscoveryError:
        return DiscoveryError(
            f"{where} answered a malformed health list for {name!r}: {why}", service=name
        )

    if not isinstance(entries, list):
        raise malformed(f"expected a JSON list, got {type(entries).__name__}")
    found: list[Instance] = []
    for index, entry in enumerate(entries):
        service = entry.get("Service") if isinstance(entry, dict) else None
        if not isinstance(service, dict):
            raise malformed(f"entry {index} has no Service object")
        node = entry.get("Node")
        node_address = node.get("Address") if isinstance(node, dict) else None
        address = service.get("Address") or node_address
        if not isinstance(address, str) or not address:
            raise malformed(f"entry {index} has neither a Service.Address nor a Node.Address")
        port = service.get("Port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise malformed(f"entry {index} has Service.Port {port!r}, not a port in 1..65535")
        meta = service.get("Meta") or {}
        if not isinstance(meta, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise malformed(f"entry {index} has a Service.Meta that is not strings to strings")
        instance_id = service.get("ID", "")
        if not isinstance(instance_id, str):
            raise malformed(f"entry {index} has Service.ID {instance_id!r}, not a string")
        try:
            found.append(
                Instance(
                    address,
                    port,
                    meta.get("scheme") or ("grpc" if protocol == "grpc" else "http"),
                    meta.get("path", ""),
                    instance_id,
                    dict(meta),
                )
            )
        except ValueError as exc:
            raise malformed(f"entry {index}: {exc}") from exc
    return found
