"""The DNS backend: Kubernetes (and Istio) service names, asked over UDP.

For ``users`` over HTTP in namespace ``default`` it asks, in order:

1. SRV ``_http._tcp.user-service.default.svc.cluster.local`` (``_grpc._tcp.``
   and ``user-service-grpc`` for the gRPC face). Kubernetes names SRV records
   after a Service's named ports, ``_<port-name>._<proto>.<svc>.<ns>.svc.cluster.local``,
   so the ports are to be named ``http`` and ``grpc``. Each target's A/AAAA
   records (from the additional section, else asked for) are the instances, at
   the SRV record's port.
2. Without SRV records: A and AAAA of ``user-service.default.svc.cluster.local``,
   at the catalogue's port for that face (``spec.port``, or ``spec.grpc_port``
   for the gRPC face of a service that has both).

A name nothing answers for (NXDOMAIN, no records) is []. Queries are built
and parsed by dnslib and sent over UDP; one that gets no answer by half the
timeout is sent once more. There is no TCP fallback: a truncated answer is an
error. Without ``server`` the first ``nameserver`` of ``/etc/resolv.conf``
is asked (read when the backend is made); with none there, the system's
resolver (``getaddrinfo``) gives A/AAAA records only, no SRV.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import dnslib  # type: ignore[import-untyped]  # no type hints: used only in _encode and _decode

from servicegrid._validate import check_number
from servicegrid.discovery.base import Instance, ServiceName, WireProtocol
from servicegrid.errors import DiscoveryError

__all__ = ["RESOLV_CONF", "DnsBackend", "system_nameserver"]

RESOLV_CONF: Final = "/etc/resolv.conf"

T = TypeVar("T")

_DNS_PORT: Final = 53
_NOERROR: Final = 0
_NXDOMAIN: Final = 3
_LABEL: Final = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_NOT_FOUND_ERRNOS: Final = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def system_nameserver(path: str | None = None) -> tuple[str, int] | None:
    """The first ``nameserver`` in ``path`` (default :data:`RESOLV_CONF`) at port 53, or None."""
    try:
        text = Path(path or RESOLV_CONF).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return fields[1], _DNS_PORT
    return None


# ---- the wire format, through dnslib -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Record:
    """One resource record of an answer: an address (A, AAAA) or a service location (SRV)."""

    name: str
    type: str
    address: str = ""
    target: str = ""
    port: int = 0
    priority: int = 0
    weight: int = 0


@dataclass(frozen=True, slots=True)
class _Reply:
    rcode: int
    answers: tuple[_Record, ...]
    additional: tuple[_Record, ...]


class _BadReply(ValueError):
    """A datagram that is not an acceptable answer to the query; the message says why."""


def _name(label: object) -> str:
    return str(label).rstrip(".").lower()


def _encode(name: str, qtype: str, ident: int) -> bytes:
    query = dnslib.DNSRecord.question(name, qtype)
    query.header.id = ident
    return bytes(query.pack())


def _record(rr: Any) -> _Record:
    """One of dnslib's ``RR``s as a :class:`_Record`."""
    rtype = str(dnslib.QTYPE.get(rr.rtype, ""))
    name, rdata = _name(rr.rname), rr.rdata
    if rtype in ("A", "AAAA"):
        return _Record(name, rtype, address=str(rdata))
    if rtype == "SRV":
        return _Record(
            name,
            rtype,
            target=_name(rdata.target),
            port=int(rdata.port),
            priority=int(rdata.priority),
            weight=int(rdata.weight),
        )
    return _Record(name, rtype)


def _decode(data: bytes, ident: int, name: str, qtype: str) -> _Reply:
    """The answer to query ``ident`` for ``name``/``qtype``; _BadReply when ``data`` is not one."""
    try:
        message = dnslib.DNSRecord.parse(data)
        header = message.header
        questions = [
            (_name(q.qname), str(dnslib.QTYPE.get(q.qtype, ""))) for q in message.questions
        ]
        answers = tuple(_record(rr) for rr in message.rr)
        additional = tuple(_record(rr) for rr in message.ar)
        reply_id, is_answer, truncated, rcode = (
            int(header.id),
            bool(header.qr),
            bool(header.tc),
            int(header.rcode),
        )
    except Exception as exc:  # dnslib raises DNSError, but also whatever a bad field trips
        raise _BadReply(f"answered a malformed message ({exc})") from exc
    if reply_id != ident:
        raise _BadReply(f"answered with id {reply_id}, not the query's {ident}")
    if not is_answer:
        raise _BadReply("sent a query, not an answer")
    if truncated:
        raise _BadReply("answered truncated (TC); this resolver has no TCP fallback")
    if questions and questions[0] != (name.lower().rstrip("."), qtype):
        raise _BadReply(f"answered another question ({questions[0][1]} {questions[0][0]})")
    if rcode not in (_NOERROR, _NXDOMAIN):
        raise _BadReply(f"answered {dnslib.RCODE.get(rcode, rcode)}")
    return _Reply(rcode, answers, additional)


# ---- one exchange over UDP -------------------------------------------------------------------


class _Exchange(asyncio.DatagramProtocol):
    """Collects what arrives on one connected UDP socket: datagrams, or the error (refused)."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[bytes | OSError] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.arrived.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.arrived.put_nowait(exc)


async def _gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await all; on the first failure, cancel the rest rather than leave them running."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


class DnsBackend:
    """A :class:`~servicegrid.discovery.base.Backend` over DNS; see the module docstring.

    ``server`` is the ``(host, port)`` to ask (default: the system's).
    ``timeout`` (seconds) bounds one lookup, every query in it together.
    """

    name = "dns"

    def __init__(
        self,
        namespace: str = "default",
        *,
        server: tuple[str, int] | None = None,
        timeout: float = 2.0,
        domain: str = "svc.cluster.local",
    ) -> None:
        for what, value in (("namespace", namespace), ("domain", domain)):
            labels = value.strip(".").split(".") if value.strip(".") else []
            if (what == "namespace" and not labels) or not all(map(_LABEL.match, labels)):
                raise ValueError(f"DnsBackend {what} {value!r} is not a DNS name")
        self.namespace = namespace
        self.domain = domain.strip(".")
        self.timeout = check_number("DnsBackend.timeout", timeout, inclusive=False)
        self.server = server if server is not None else system_nameserver()

    @property
    def _where(self) -> str:
        if self.server is None:
            return "the system resolver"
        host, port = self.server
        return f"DNS server {f'[{host}]' if ':' in host else host}:{port}"

    def fqdn(self, service: ServiceName, protocol: WireProtocol) -> str:
        """``<registered name>.<namespace>.<domain>``: the name its A/AAAA records are under."""
        parts = (service.registered_as(protocol), self.namespace.strip("."), self.domain)
        return ".".join(part for part in parts if part)

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        """The instances DNS names for ``service``'s ``protocol`` face; [] when it names none.

        Raises DiscoveryError when the server does not answer within ``timeout``,
        answers a malformed, truncated or failed (SERVFAIL) message, or when
        there are addresses but no SRV record and the catalogue knows no port.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        name = self.fqdn(service, protocol)
        registered = service.registered_as(protocol)
        scheme = "grpc" if protocol == "grpc" else "http"
        if self.server is not None:
            srv = await self._query(
                self.server, f"_{protocol}._tcp.{name}", "SRV", deadline, registered
            )
            located = [r for r in srv.answers if r.type == "SRV" and r.target]
            if located:
                return await self._from_srv(located, srv.additional, scheme, deadline, registered)
        addresses = await self._addresses(name, deadline, registered)
        if not addresses:
            return []
        port = _catalogue_port(service, protocol)
        if port is None:
            raise DiscoveryError(
                f"{self._where} has addresses for {name!r} but no SRV record "
                f"(_{protocol}._tcp.{name}), and the catalogue knows no {protocol} port "
                f"for {service.discovery_name!r}: name the Service's port {protocol!r}",
                service=registered,
            )
        path = _base_path(service, protocol)
        return [Instance(address, port, scheme, path, f"{name}/{address}") for address in addresses]

    async def _from_srv(
        self,
        located: list[_Record],
        additional: tuple[_Record, ...],
        scheme: str,
        deadline: float,
        registered: str,
    ) -> list[Instance]:
        known: dict[str, list[str]] = {}
        for record in additional:
            if record.type in ("A", "AAAA"):
                known.setdefault(record.name, []).append(record.address)
        missing = sorted({r.target for r in located if r.target not in known})
        resolved = await _gather(self._addresses(t, deadline, registered) for t in missing)
        known.update(zip(missing, resolved, strict=True))
        found: dict[tuple[str, int], Instance] = {}
        for record in sorted(located, key=lambda r: r.priority):
            if record.port == 0:
                raise DiscoveryError(
                    f"{self._where} answered an SRV record of {record.name} with port 0",
                    service=registered,
                )
            for address in known.get(record.target, ()):
                meta = {
                    "target": record.target,
                    "priority": str(record.priority),
                    "weight": str(record.weight),
                }
                instance_id = f"{record.target}/{address}"
                found.setdefault(
                    (address, record.port),
                    Instance(address, record.port, scheme, "", instance_id, meta),
                )
        return list(found.values())

    async def _addresses(self, name: str, deadline: float, registered: str) -> list[str]:
        """A then AAAA addresses of ``name``, each once."""
        server = self.server
        if server is None:
            return await self._system_addresses(name, deadline, registered)
        replies = await _gather(
            self._query(server, name, qtype, deadline, registered) for qtype in ("A", "AAAA")
        )
        records = [r for reply in replies for r in reply.answers if r.type in ("A", "AAAA")]
        return list(dict.fromkeys(r.address for r in records))

    async def _system_addresses(self, name: str, deadline: float, registered: str) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise DiscoveryError(
                f"the system resolver did not resolve {name!r} within {self.timeout:g}s",
                service=registered,
            ) from exc
        except socket.gaierror as exc:
            if exc.errno in _NOT_FOUND_ERRNOS:
                return []
            raise DiscoveryError(
                f"the system resolver failed for {name!r}: {exc}", service=registered
            ) from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def _query(
        self, server: tuple[str, int], name: str, qtype: str, deadline: float, registered: str
    ) -> _Reply:
        """Ask ``qtype`` of ``name``, once more if no answer came by half the time left."""
        loop = asyncio.get_running_loop()
        ident = secrets.randbelow(0x10000)
        try:
            packet = _encode(name, qtype, ident)
        except Exception as exc:  # dnslib's (or the idna codec's) complaint about the name
            raise DiscoveryError(f"{name!r} is not a DNS name: {exc}", service=registered) from exc

        def failed(why: str) -> DiscoveryError:
            return DiscoveryError(f"{self._where} {why} for {qtype} {name}", service=registered)

        try:
            transport, exchange = await loop.create_datagram_endpoint(_Exchange, remote_addr=server)
        except OSError as exc:
            raise failed(f"cannot be reached ({exc})") from exc
        try:
            for attempt in (1, 2):
                transport.sendto(packet)
                now = loop.time()
                # the same query (and id) goes again: a late answer to the first still counts
                until = deadline if attempt == 2 else now + (deadline - now) / 2
                try:
                    async with asyncio.timeout_at(until):
                        arrived = await exchange.arrived.get()
                except TimeoutError:
                    continue
                if isinstance(arrived, OSError):
                    raise failed(f"cannot be reached ({arrived})") from arrived
                try:
                    return _decode(arrived, ident, name, qtype)
                except _BadReply as exc:
                    raise failed(str(exc)) from exc
            raise failed(f"did not answer within {self.timeout:g}s")
        finally:
            transport.close()

    async def aclose(self) -> None:
        """Nothing to release: every query opens and closes its own socket."""

    def __repr__(self) -> str:
        return f"DnsBackend(namespace={self.namespace!r}, {self._where})"


def _catalogue_port(service: ServiceName, protocol: WireProtocol) -> int | None:
    """The catalogue's port for ``protocol``'s face of ``service``, or None if it has none."""
    spec = service.spec
    if spec is None:
        return None
    if protocol == spec.protocol:
        return spec.port
    return spec.grpc_port if protocol == "grpc" else None


def _base_path(service: ServiceName, protocol: WireProtocol) -> str:
    spec = service.spec
    return spec.base_path if spec is not None and protocol == spec.protocol == "http" else ""
