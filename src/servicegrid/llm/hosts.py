"""One LLM host: what it is (:class:`LLMHost`), how it is doing (:class:`HostState`), and the
bookkeeping of one attempt on it (:class:`Attempt`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from servicegrid._validate import check_count, check_number
from servicegrid.clock import Clock, iso_utc
from servicegrid.errors import ServiceError, is_retryable
from servicegrid.llm.latency import LatencyEwma
from servicegrid.resilience.breaker import CircuitBreaker, Permit
from servicegrid.transports.httpx_compat import RequestEncoder

__all__ = [
    "Attempt",
    "HostMetrics",
    "HostState",
    "LLMHost",
    "counts_against_host",
    "hosts_from_urls",
    "origin_of",
]

_log = logging.getLogger("servicegrid.llm")


def origin_of(url: str) -> str:
    """``url`` as the host's base: an http(s) URL with a host, no query, no trailing ``/v1``.

    Raises ValueError saying what is wrong.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"LLMHost.url must be an http(s) URL, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"LLMHost.url must start with http:// or https://, got {url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"LLMHost.url has a bad port: {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"LLMHost.url has no host: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"LLMHost.url must not have a query or fragment: {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):  # an OpenAI-style base URL; request paths carry /v1 themselves
        path = path[: -len("/v1")]
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


@dataclass(frozen=True, slots=True)
class LLMHost:
    """One OpenAI-compatible LLM server (seed 004).

    ``url`` is its origin (``https://llm1.example.com``); a trailing ``/v1`` is
    dropped, so an OpenAI-style base URL works too. ``weight`` (> 0) is its
    share under WEIGHTED_RANDOM; ``max_concurrent`` caps its calls in flight
    (None: no cap); ``api_key`` goes out as a bearer token. Raises ValueError
    for a bad name, URL, weight or cap.
    """

    name: str
    url: str
    weight: float = 1.0
    enabled: bool = True
    max_concurrent: int | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"LLMHost.name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "url", origin_of(self.url))
        object.__setattr__(
            self, "weight", check_number("LLMHost.weight", self.weight, inclusive=False)
        )
        if self.max_concurrent is not None:
            check_count("LLMHost.max_concurrent", self.max_concurrent)

    @classmethod
    def from_url(cls, url: str) -> LLMHost:
        """A host named after its URL's ``host:port`` (how discovered hosts are named)."""
        return cls(name=urlsplit(origin_of(url)).netloc, url=url)


def hosts_from_urls(urls: Iterable[str]) -> list[LLMHost]:
    """A host per distinct URL (as discovery gives them), named by :meth:`LLMHost.from_url`;
    URLs that are not http(s) URLs are logged and skipped."""
    hosts: dict[str, LLMHost] = {}
    for url in urls:
        try:
            host = LLMHost.from_url(url)
        except ValueError as exc:
            _log.warning("skipping a discovered LLM host: %s", exc)
            continue
        hosts.setdefault(host.name, host)
    return list(hosts.values())


def counts_against_host(error: BaseException) -> bool:
    """Whether ``error`` says the host is unwell: retryable and not a 4xx. A 429 is the host
    shedding load as meant, so it moves the call elsewhere without tripping the breaker."""
    return (
        isinstance(error, ServiceError) and error.retryable and not 400 <= error.http_status < 500
    )


@dataclass(frozen=True, slots=True)
class HostMetrics:
    """A snapshot of one host; latencies in milliseconds (time to the first byte for streams)."""

    name: str
    url: str
    enabled: bool
    weight: float
    requests: int
    successes: int
    errors: int
    client_errors: int
    in_flight: int
    latency_avg_ms: float | None
    latency_ewma_ms: float | None
    circuit_breaker: str
    last_error: str | None
    last_error_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HostState:
    """The live state of one host: breaker, load, counters and latency estimate."""

    def __init__(
        self,
        host: LLMHost,
        *,
        breaker: CircuitBreaker,
        headers: Mapping[str, str],
        latency: LatencyEwma,
        clock: Clock,
    ) -> None:
        self.host = host
        self.breaker = breaker
        self.enabled = host.enabled
        self.position = 0
        self.in_flight = 0
        self.requests = 0
        self.successes = 0
        self.errors = 0
        self.client_errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._latency_sum = 0.0
        self._ewma: float | None = None
        self._ewma_at = 0.0
        self._policy = latency
        self._clock = clock
        if host.api_key:
            headers = {**headers, "authorization": f"Bearer {host.api_key}"}
        self.encoder = RequestEncoder(host.url, headers)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def weight(self) -> float:
        return self.host.weight

    @property
    def latency(self) -> float:
        """The latency estimate now, in seconds."""
        return self._policy.faded(self._ewma, self._clock.now() - self._ewma_at)

    def has_room(self) -> bool:
        cap = self.host.max_concurrent
        return cap is None or self.in_flight < cap

    def admit(self) -> Attempt:
        """Start an attempt; raises ServiceUnavailable when the breaker refuses it."""
        permit = self.breaker.acquire()
        self.in_flight += 1
        self.requests += 1
        return Attempt(self, permit, self._clock.now())

    def _sample(self, seconds: float, now: float) -> None:
        self._ewma = self._policy.observe(self._ewma, now - self._ewma_at, seconds)
        self._ewma_at = now

    def _penalise(self, now: float) -> None:
        self._sample(self._policy.penalty(self._ewma, now - self._ewma_at), now)

    def snapshot(self) -> HostMetrics:
        return HostMetrics(
            name=self.name,
            url=self.host.url,
            enabled=self.enabled,
            weight=self.weight,
            requests=self.requests,
            successes=self.successes,
            errors=self.errors,
            client_errors=self.client_errors,
            in_flight=self.in_flight,
            latency_avg_ms=(
                round(self._latency_sum / self.successes * 1000, 3) if self.successes else None
            ),
            latency_ewma_ms=None if self._ewma is None else round(self.latency * 1000, 3),
            circuit_breaker=self.breaker.state.value,
            last_error=self.last_error,
            last_error_at=iso_utc(self.last_error_at),
        )

    def __repr__(self) -> str:
        return f"HostState({self.name!r}, in_flight={self.in_flight})"


class Attempt:
    """One call on one host, from admission to its outcome; exactly one outcome counts."""

    __slots__ = ("_first_byte", "_open", "host", "permit", "started")

    def __init__(self, host: HostState, permit: Permit, started: float) -> None:
        self.host = host
        self.permit = permit
        self.started = started
        self._first_byte: float | None = None
        self._open = True

    def first_byte(self) -> None:
        """Note that the answer began: a stream's latency is its time to the first byte."""
        self._first_byte = self.host._clock.now()

    def _close(self) -> tuple[HostState, float] | None:
        if not self._open:
            return None
        self._open = False
        self.host.in_flight -= 1
        return self.host, self.host._clock.now()

    def succeeded(self, *, client_error: bool = False) -> None:
        """The host answered (``client_error``: with a 4xx that is the request's fault)."""
        closed = self._close()
        if closed is None:
            return
        host, now = closed
        seconds = (now if self._first_byte is None else self._first_byte) - self.started
        host.breaker.record_success(self.permit, seconds)
        host.successes += 1
        host.client_errors += client_error
        host._latency_sum += seconds
        host._sample(seconds, now)

    def failed(self, error: BaseException) -> None:
        """The call failed with ``error``; a retryable one counts as a slow answer."""
        closed = self._close()
        if closed is None:
            return
        host, now = closed
        if counts_against_host(error):
            host.breaker.record_failure(self.permit, now - self.started)
        else:
            host.breaker.release(self.permit)
        host.errors += 1
        host.last_error = f"{type(error).__name__}: {error}"
        host.last_error_at = host._clock.wall()
        if is_retryable(error):  # not one the request brought on itself (a bad header)
            host._penalise(now)

    def abandoned(self) -> None:
        """The caller gave up (cancelled, a hedge lost): no verdict on the host, but the time
        it had taken so far is a lower bound on its latency, so it can only raise the estimate."""
        closed = self._close()
        if closed is None:
            return
        host, now = closed
        host.breaker.release(self.permit)
        if now - self.started > host.latency:
            host._sample(now - self.started, now)
