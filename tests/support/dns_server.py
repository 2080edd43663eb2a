"""A small real DNS server for tests: UDP on a free loopback port, in a background thread.

Records are set while it runs; dnslib parses the queries and packs the answers.
A name it has records for answers NOERROR (with no records of another type:
NODATA), any other name NXDOMAIN. An SRV answer carries its targets' A/AAAA
records in the additional section unless told not to. ``mode`` makes it
misbehave:

    with DnsServer() as dns:
        dns.add_srv("_http._tcp.user-service.default.svc.cluster.local", "pod-a", 8001)
        dns.add_a("pod-a", "10.0.0.1")
        dns.mode = "servfail"          # or garbage, drop, wrong-id, truncated, cut, query
        dns.drop_next = 1              # lose the next datagram (then answer as usual)
        dns.queries                    # [("_http._tcp.user-service...", "SRV"), ...]
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any, Literal, Self

import dnslib  # type: ignore[import-untyped]

__all__ = ["DnsServer", "Mode"]

Mode = Literal["answer", "garbage", "servfail", "drop", "wrong-id", "truncated", "cut", "query"]


def _key(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True)
class _Srv:
    target: str
    port: int
    priority: int
    weight: int
    additional: bool


class DnsServer:
    """Answers DNS queries on ``127.0.0.1:port`` (``address``) from the records it was given."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.mode: Mode = "answer"
        self.drop_next = 0
        self._addresses: dict[tuple[str, str], list[str]] = {}
        self._srv: dict[str, list[_Srv]] = {}
        self._queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    @property
    def queries(self) -> list[tuple[str, str]]:
        """Every question received, as (name without the final dot, type), in order."""
        with self._lock:
            return list(self._queries)

    def add_a(self, name: str, *addresses: str) -> None:
        with self._lock:
            self._addresses.setdefault((_key(name), "A"), []).extend(addresses)

    def add_aaaa(self, name: str, *addresses: str) -> None:
        with self._lock:
            self._addresses.setdefault((_key(name), "AAAA"), []).extend(addresses)

    def add_srv(
        self,
        name: str,
        target: str,
        port: int,
        *,
        priority: int = 0,
        weight: int = 100,
        additional: bool = True,
    ) -> None:
        """An SRV record; with ``additional``, its target's A/AAAA go in the additional section."""
        with self._lock:
            record = _Srv(_key(target), port, priority, weight, additional)
            self._srv.setdefault(_key(name), []).append(record)

    def reset(self) -> None:
        """No records, no recorded queries, answering normally."""
        with self._lock:
            self._addresses.clear()
            self._srv.clear()
            self._queries.clear()
            self.mode, self.drop_next = "answer", 0

    # ---- serving -----------------------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._serve, name="dns-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._reply(data)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def _reply(self, data: bytes) -> bytes | None:
        try:
            query = dnslib.DNSRecord.parse(data)
        except dnslib.DNSError:
            return None
        question = query.questions[0]
        qname, qtype = _key(str(question.qname)), str(dnslib.QTYPE[question.qtype])
        with self._lock:
            self._queries.append((qname, qtype))
            mode = self.mode
            if self.drop_next:
                self.drop_next -= 1
                return None
            reply = self._answer(query, qname, qtype)
        if mode == "drop":
            return None
        if mode == "garbage":
            return b"\x13\x37 this is not a DNS message at all"
        if mode == "servfail":
            reply = query.reply()
            reply.header.rcode = dnslib.RCODE.SERVFAIL
        elif mode == "wrong-id":
            reply.header.id = (query.header.id + 1) % 0x10000
        elif mode == "truncated":
            reply.header.tc = 1
        elif mode == "query":
            reply.header.qr = 0
        packed: bytes = reply.pack()
        return packed[: len(packed) - 3] if mode == "cut" else packed

    def _answer(self, query: Any, qname: str, qtype: str) -> Any:
        """The answer from the records (under the lock)."""
        reply = query.reply()
        known = qname in self._srv or any(name == qname for name, _ in self._addresses)
        if not known:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply
        if qtype == "SRV":
            for srv in self._srv.get(qname, []):
                rdata = dnslib.SRV(srv.priority, srv.weight, srv.port, srv.target + ".")
                reply.add_answer(dnslib.RR(qname + ".", dnslib.QTYPE.SRV, rdata=rdata, ttl=30))
                if srv.additional:
                    for rr in self._address_records(srv.target):
                        reply.add_ar(rr)
        elif qtype in ("A", "AAAA"):
            for rr in self._address_records(qname, qtype):
                reply.add_answer(rr)
        return reply

    def _address_records(self, name: str, only: str | None = None) -> list[Any]:
        records = []
        for rtype, rdata_class in (("A", dnslib.A), ("AAAA", dnslib.AAAA)):
            if only in (None, rtype):
                for address in self._addresses.get((name, rtype), []):
                    rdata = rdata_class(address)
                    qtype = getattr(dnslib.QTYPE, rtype)
                    records.append(dnslib.RR(name + ".", qtype, rdata=rdata, ttl=30))
        return records
