"""``ProductionEmbeddingService``: seed 004's embedding service with a cache and metrics.

.. code-block:: python

    service = ProductionEmbeddingService()          # all-MiniLM-L6-v2, in this process
    await service.start()
    result = await service.embed("Hello world")     # result.embedding, .dimension, .cached
    results = await service.embed(["text1", "text2", "text3"])
    similarity = await service.compute_similarity("cat", "kitten")
    service.get_metrics()["cache"]["hit_rate"]
    await service.stop()

    remote = ProductionEmbeddingService(base_url="http://gateway:8000", model="...", api_key="...")

Texts longer than ``max_text_length`` characters are cut to it (and counted); the
vectors of the texts seen last are kept in an LRU cache keyed by SHA-256; texts not
in the cache are embedded ``batch_size`` at a time.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from servicegrid._validate import check_count
from servicegrid.client_state import ClientState
from servicegrid.clients.enhanced import ConnectionPoolConfig, RetryConfig, TimeoutConfig
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.embeddings.backends import Embedder, LocalEmbedder, RemoteEmbedder, Vector
from servicegrid.errors import ClientStateError, ValidationError
from servicegrid.models.cache import LRUCache, cache_key
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.resilience.events import Hook
from servicegrid.resilience.ratelimit import RateLimitConfig
from servicegrid.status import StatusRegistry
from servicegrid.transports.base import AsyncTransport

__all__ = ["DEFAULT_MODEL", "EmbeddingResult", "ProductionEmbeddingService", "cosine_similarity"]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The model embedded with when none is named: its weights ship as a package."""


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """One text's embedding; ``cached`` when it came from the cache, ``truncated`` when the
    text was cut to ``max_text_length`` characters first."""

    embedding: list[float]
    dimension: int
    cached: bool
    model: str
    truncated: bool = False


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of the angle between ``a`` and ``b``; 0.0 when either is all zeros."""
    if len(a) != len(b):
        raise ValueError(f"vectors of different lengths: {len(a)} and {len(b)}")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norms if norms else 0.0


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError.for_field(
            field, f"must be a string, got {type(value).__name__}", type="type_error"
        )
    if not value:
        raise ValidationError.for_field(field, "must not be empty")
    return value


def _texts_of(texts: object) -> tuple[list[str], bool]:
    """The texts to embed and whether one string was given; ValidationError naming the field."""
    if isinstance(texts, str):
        return [_check_text("text", texts)], True
    if not isinstance(texts, list | tuple):
        raise ValidationError.for_field(
            "texts",
            f"must be a string or a list of strings, got {type(texts).__name__}",
            type="type_error",
        )
    if not texts:
        raise ValidationError.for_field("texts", "must not be an empty list")
    return [_check_text(f"texts[{i}]", text) for i, text in enumerate(texts)], False


class ProductionEmbeddingService:
    """Embeddings with an LRU cache, truncation, batching, similarity and metrics (seed 004).

    Local by default: ``model`` (default all-MiniLM-L6-v2) loaded in this process on
    ``backend`` and ``device`` (None: the local model's defaults). With ``base_url`` it
    calls that OpenAI-compatible server's ``/v1/embeddings`` (``api_key`` as a bearer
    token) through an :class:`~servicegrid.clients.enhanced.EnhancedHTTPClient` with seed
    004's defaults: a pool of 50 connections, 3 attempts with jitter, a breaker that opens
    after 5 failures, 5 requests/s with bursts of 10; ``health_check_path`` (e.g.
    ``"/health"``) makes :meth:`health_check` probe the server; ``transport`` replaces its
    network, ``registry`` is where it reports its status (None: nowhere). ``cache_size`` 0
    turns the cache off. Raises ValueError for bad arguments, and for options of the other
    mode (``device`` with ``base_url``, ``api_key`` without it, ...).
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        api_key: str | None = None,
        backend: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        max_text_length: int = 8192,
        cache_size: int = 1000,
        service_name: str = "embedding-service",
        pool_config: ConnectionPoolConfig | None = None,
        retry_config: RetryConfig | None = None,
        timeout_config: TimeoutConfig | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        rate_limit_config: RateLimitConfig | None = None,
        health_check_path: str | None = None,
        transport: AsyncTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
        registry: StatusRegistry | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        self.model = model
        self.batch_size = check_count("batch_size", batch_size)
        self.max_text_length = check_count("max_text_length", max_text_length)
        self.cache: LRUCache[Vector] = LRUCache(check_count("cache_size", cache_size, minimum=0))
        self.service_name = service_name
        self._clock = clock
        self._embedder: Embedder
        remote_only = {
            "api_key": api_key,
            "pool_config": pool_config,
            "retry_config": retry_config,
            "timeout_config": timeout_config,
            "circuit_breaker_config": circuit_breaker_config,
            "rate_limit_config": rate_limit_config,
            "health_check_path": health_check_path,
            "transport": transport,
        }
        local_only = {"backend": backend, "device": device}
        misplaced = [k for k, v in (local_only if base_url else remote_only).items() if v]
        if misplaced:
            mode = "a remote (base_url)" if base_url else "a local (no base_url)"
            raise ValueError(f"{', '.join(misplaced)}: not options of {mode} service")
        if base_url is None:
            self.mode = "local"
            self._embedder = LocalEmbedder(
                model, backend=backend, device=device, batch_size=batch_size
            )
            self._remote: RemoteEmbedder | None = None
        else:
            self.mode = "remote"
            self._remote = self._embedder = RemoteEmbedder(
                base_url,
                model=model,
                api_key=api_key,
                service_name=service_name,
                pool_config=pool_config or ConnectionPoolConfig(max_connections=50),
                retry_config=retry_config,
                timeout_config=timeout_config,
                circuit_breaker_config=circuit_breaker_config
                or CircuitBreakerConfig(failure_threshold=5),
                rate_limit_config=rate_limit_config
                or RateLimitConfig(requests_per_second=5.0, burst_size=10),
                health_check_path=health_check_path,
                transport=transport,
                clock=clock,
                hooks=hooks,
                registry=registry,
            )
        # the key names where vectors came from, so two services never share one wrongly
        scope = model if base_url is None else f"{self._remote_url()}#{model}"
        self._key: Callable[[str], bytes] = functools.partial(cache_key, scope, normalize=False)
        self._start_lock = asyncio.Lock()
        self.state = ClientState.UNOPENED
        self.requests_total = 0
        self.errors_total = 0
        self.errors_by_type: Counter[str] = Counter()
        self.texts_total = 0
        self.texts_embedded = 0
        self.batches_total = 0
        self.truncations = 0
        self.total_latency = 0.0

    def _remote_url(self) -> str:
        return "" if self._remote is None else self._remote.client.base_url

    @property
    def dimension(self) -> int | None:
        """The embeddings' length, once known (local: after start; remote: after a call)."""
        return self._embedder.dimension

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the local model, or open the remote client's pool; idempotent."""
        if self.state is ClientState.CLOSED:
            raise ClientStateError(
                f"{self.service_name}: the service is stopped; make a new one",
                service=self.service_name,
            )
        async with self._start_lock:
            if self.state is ClientState.UNOPENED:
                await self._embedder.start()
                self.state = ClientState.OPENED

    async def stop(self) -> None:
        """Unload the model or close the pool; later calls raise ClientStateError."""
        async with self._start_lock:  # a start() under way finishes first
            if self.state is ClientState.CLOSED:
                return
            self.state = ClientState.CLOSED
            await self._embedder.aclose()

    async def __aenter__(self) -> ProductionEmbeddingService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _check_started(self) -> None:
        if self.state is ClientState.OPENED:
            return
        why = "call await start() first" if self.state is ClientState.UNOPENED else "it is stopped"
        raise ClientStateError(
            f"{self.service_name}: cannot embed, {why}", service=self.service_name
        )

    # ---- embedding ----------------------------------------------------------------------

    @overload
    async def embed(self, texts: str) -> EmbeddingResult: ...

    @overload
    async def embed(self, texts: list[str] | tuple[str, ...]) -> list[EmbeddingResult]: ...

    async def embed(
        self, texts: str | list[str] | tuple[str, ...]
    ) -> EmbeddingResult | list[EmbeddingResult]:
        """One result for a string, a list of results (in order) for a list of strings.

        Raises ValidationError naming the bad field, ClientStateError before :meth:`start`
        or after :meth:`stop`, and what the model or the remote server raised.
        """
        self._check_started()
        items, single = _texts_of(texts)
        started = self._clock.now()
        self.requests_total += 1
        try:
            results = await self._embed(items)
        except Exception as error:
            self.errors_total += 1
            self.errors_by_type[type(error).__name__] += 1
            raise
        finally:
            self.total_latency += self._clock.now() - started
        return results[0] if single else results

    async def _embed(self, items: list[str]) -> list[EmbeddingResult]:
        limit = self.max_text_length
        cut = [len(text) > limit for text in items]
        texts = [text[:limit] if long else text for text, long in zip(items, cut, strict=True)]
        self.truncations += sum(cut)
        self.texts_total += len(texts)
        keys = [self._key(text) for text in texts]
        found = [self.cache.get(key) for key in keys]
        # each missing text once, however often it repeats in this call
        missing = {
            key: text for key, text, hit in zip(keys, texts, found, strict=True) if hit is None
        }
        fresh: dict[bytes, Vector] = {}
        pending = list(missing.items())
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start : start + self.batch_size]
            vectors = await self._embedder.embed([text for _, text in batch])
            self.batches_total += 1
            self.texts_embedded += len(batch)
            for (key, _), vector in zip(batch, vectors, strict=True):
                fresh[key] = vector
                self.cache.put(key, vector)
        results = []
        for key, hit, long in zip(keys, found, cut, strict=True):
            vector = hit if hit is not None else fresh[key]
            results.append(
                EmbeddingResult(
                    embedding=list(vector),
                    dimension=len(vector),
                    cached=hit is not None,
                    model=self.model,
                    truncated=long,
                )
            )
        return results

    async def compute_similarity(self, text1: str, text2: str) -> float:
        """The cosine similarity of the two texts' embeddings, in [-1, 1]."""
        self._check_started()
        first = _check_text("text1", text1)
        second = _check_text("text2", text2)
        a, b = await self.embed([first, second])
        return cosine_similarity(a.embedding, b.embedding)

    # ---- metrics and health -------------------------------------------------------------

    def get_metrics(self) -> dict[str, Any]:
        """Counts, error rate, mean latency (ms), truncations and the cache's hit rate."""
        total = self.requests_total
        return {
            "service": self.service_name,
            "mode": self.mode,
            "model": self.model,
            "state": self.state.value,
            "dimension": self.dimension,
            "batch_size": self.batch_size,
            "max_text_length": self.max_text_length,
            "requests_total": total,
            "errors_total": self.errors_total,
            "error_rate": self.errors_total / total if total else 0.0,
            "errors_by_type": dict(self.errors_by_type),
            "average_latency_ms": 1000.0 * self.total_latency / total if total else 0.0,
            "texts_total": self.texts_total,
            "texts_embedded": self.texts_embedded,
            "batches_total": self.batches_total,
            "truncations": self.truncations,
            "cache": self.cache.get_status(),
            "backend": self._embedder.describe(),
        }

    async def health_check(self) -> dict[str, Any]:
        """Seed 004's ``{"status", "metrics", "circuit_breaker", "rate_limiter"}``.

        ``status``: "unknown" before :meth:`start`, "unhealthy" after :meth:`stop`; then,
        local, "healthy"; remote, the worse of the breaker's view (open: "unhealthy",
        half-open: "degraded") and the ``health_check_path`` probe's, when one is set.
        ``circuit_breaker`` and ``rate_limiter`` are None in local mode, ``health`` (the
        probe's snapshot) None without a probe.
        """
        remote = self._remote
        report: dict[str, Any] = {
            "status": "healthy",
            "metrics": self.get_metrics(),
            "circuit_breaker": None,
            "rate_limiter": None,
            "health": None,
        }
        if remote is not None:
            client = remote.client
            report["circuit_breaker"] = client.circuit_breaker.get_status()
            limiter = client.rate_limiter
            report["rate_limiter"] = limiter.get_status() if limiter is not None else None
            verdicts = [_BREAKER_VERDICT.get(report["circuit_breaker"]["state"], "degraded")]
            if remote.probes_health and self.state is ClientState.OPENED:
                probe = await client.health_check()
                report["health"] = probe["health"]
                verdicts.append(probe["status"])
            report["status"] = max(verdicts, key=_SEVERITY.index)
        if self.state is not ClientState.OPENED:
            report["status"] = "unknown" if self.state is ClientState.UNOPENED else "unhealthy"
        return report

    def __repr__(self) -> str:
        where = self._remote_url() if self.mode == "remote" else "local"
        return f"ProductionEmbeddingService(model={self.model!r}, {where})"


_SEVERITY = ("healthy", "degraded", "unhealthy")
_BREAKER_VERDICT = {"closed": "healthy", "half_open": "degraded", "open": "unhealthy"}
