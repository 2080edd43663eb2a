"""Where :class:`~servicegrid.embeddings.ProductionEmbeddingService` gets its vectors: a model
loaded in this process (:class:`LocalEmbedder`) or an OpenAI-compatible ``/v1/embeddings``
endpoint (:class:`RemoteEmbedder`) reached through seed 004's
:class:`~servicegrid.clients.enhanced.EnhancedHTTPClient`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from servicegrid.clients.enhanced import (
    ConnectionPoolConfig,
    EnhancedHTTPClient,
    RetryConfig,
    TimeoutConfig,
)
from servicegrid.clock import Clock
from servicegrid.errors import InvalidResponse, ModelNotLoaded
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.resilience.events import Hook
from servicegrid.resilience.ratelimit import RateLimitConfig
from servicegrid.status import StatusRegistry
from servicegrid.transports.base import AsyncTransport

if TYPE_CHECKING:
    from servicegrid.models.local import LocalEmbeddingModel

__all__ = [
    "Embedder",
    "LocalEmbedder",
    "RemoteEmbedder",
    "Vector",
    "embeddings_path",
    "parse_embeddings",
]

Vector = tuple[float, ...]
"""One embedding as the service keeps it: immutable, so a cached vector cannot be changed."""


class Embedder(Protocol):
    """Turns a batch of texts into one vector each, in order."""

    @property
    def dimension(self) -> int | None: ...

    async def start(self) -> None: ...

    async def embed(self, texts: list[str]) -> list[Vector]: ...

    async def aclose(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def _as_vector(row: Any) -> Vector:
    return tuple(float(value) for value in row)


class LocalEmbedder:
    """A :class:`~servicegrid.models.local.LocalEmbeddingModel` in this process.

    ``backend`` (a ``ModelBackend`` or its value) and ``device`` None leave the choice to
    ``LocalEmbeddingConfig``'s defaults (sentence-transformers, CPU).
    """

    def __init__(
        self, model: str, *, backend: str | None = None, device: str | None = None, batch_size: int
    ) -> None:
        self.model = model
        self.backend = backend
        self.device = device
        self.batch_size = batch_size
        self._model: LocalEmbeddingModel | None = None
        self._dimension: int | None = None

    @property
    def dimension(self) -> int | None:
        return self._dimension

    async def start(self) -> None:
        # Imported here: the models layer pulls torch, which remote-only users never need.
        from servicegrid.models.local import LocalEmbeddingConfig, LocalEmbeddingModel

        options: dict[str, Any] = {"model_name": self.model, "batch_size": self.batch_size}
        if self.backend is not None:
            options["backend"] = self.backend
        if self.device is not None:
            options["device"] = self.device
        model = LocalEmbeddingModel(LocalEmbeddingConfig(**options))
        await model.load()
        self._dimension = int(model.get_info()["embedding_dimension"])
        self._model = model

    async def embed(self, texts: list[str]) -> list[Vector]:
        if self._model is None:
            raise ModelNotLoaded(f"local embedding model {self.model!r} is not loaded")
        output = await self._model.embed(texts)
        return [_as_vector(row) for row in output.tolist()]

    async def aclose(self) -> None:
        model, self._model = self._model, None
        if model is not None:
            await model.unload()

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"model": self.model, "backend": self.backend, "device": self.device}
        if self._model is not None:
            loaded = self._model.get_info()
            info.update(backend=loaded["backend"], device=loaded["device"])
        return {"mode": "local", "loaded": self._model is not None, **info}


def embeddings_path(base_url: str) -> str:
    """``/v1/embeddings`` under ``base_url``; an OpenAI-style base that ends in ``/v1`` has it."""
    if urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        return "/embeddings"
    return "/v1/embeddings"


def parse_embeddings(body: bytes, count: int, service: str) -> list[Vector]:
    """The ``count`` vectors of an OpenAI embeddings answer, in input order (``data[].index``);
    InvalidResponse when the answer is not one."""

    def bad(why: str) -> InvalidResponse:
        return InvalidResponse(f"embeddings answer from {service}: {why}", service=service)

    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise bad(f"not JSON: {exc}") from None
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else "no"
        raise bad(f"expected {count} embeddings in 'data', got {got}")
    vectors: list[Vector | None] = [None] * count
    for position, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("embedding"), list):
            raise bad(f"data[{position}] has no 'embedding' list")
        index = item.get("index", position)
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise bad(f"data[{position}] has a bad or repeated index {index!r}")
        values = item["embedding"]
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise bad(f"data[{position}].embedding is not a list of finite numbers")
        vectors[index] = _as_vector(values)
    dimensions = {len(v) for v in vectors if v is not None}
    if len(dimensions) != 1:
        raise bad(f"embeddings of different lengths: {sorted(dimensions)}")
    return [v for v in vectors if v is not None]


class RemoteEmbedder:
    """``POST /v1/embeddings`` on an OpenAI-compatible server (servicegrid's gateway, OpenAI,
    vLLM, TEI...) through an :class:`EnhancedHTTPClient`: pool, retry, breaker, rate limit."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None,
        service_name: str,
        pool_config: ConnectionPoolConfig,
        retry_config: RetryConfig | None,
        timeout_config: TimeoutConfig | None,
        circuit_breaker_config: CircuitBreakerConfig,
        rate_limit_config: RateLimitConfig | None,
        health_check_path: str | None,
        transport: AsyncTransport | None,
        clock: Clock,
        hooks: Sequence[Hook],
        registry: StatusRegistry | None,
    ) -> None:
        self.model = model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = EnhancedHTTPClient(
            service_name,
            base_url,
            pool_config=pool_config,
            retry_config=retry_config,
            timeout_config=timeout_config,
            circuit_breaker_config=circuit_breaker_config,
            rate_limit_config=rate_limit_config,
            health_check_path=health_check_path,
            headers=headers,
            transport=transport,
            clock=clock,
            hooks=hooks,
            registry=registry,
        )
        self.probes_health = health_check_path is not None
        self._path = embeddings_path(self.client.base_url)
        self._dimension: int | None = None

    @property
    def dimension(self) -> int | None:
        return self._dimension

    async def start(self) -> None:
        await self.client.start()

    async def embed(self, texts: list[str]) -> list[Vector]:
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        response = await self.client.post(self._path, json=body)
        vectors = parse_embeddings(response.content, len(texts), self.client.service_name)
        self._dimension = len(vectors[0])
        return vectors

    async def aclose(self) -> None:
        await self.client.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "remote",
            "model": self.model,
            "base_url": self.client.base_url,
            "endpoint": self._path,
            "max_connections": self.client.pool_config.max_connections,
        }
