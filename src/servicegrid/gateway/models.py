"""Which models the services serve, and what a request's ``model`` names.

A name is either the full one (``sentence-transformers/all-MiniLM-L6-v2``) or
what follows its last ``/`` (``all-MiniLM-L6-v2``). The lists come from the
services' ``ListModels`` RPCs and are kept for ``ttl`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.reranking import RerankingClient
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ResourceNotFoundError, ServiceError

__all__ = ["ModelCatalogue", "ServedModel", "short_name"]

MODEL_TTL = 10.0


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model one service runs; ``dimension`` is 0 for rerankers."""

    name: str
    dimension: int = 0
    max_sequence_length: int = 0


def short_name(name: str) -> str:
    """``org/model`` -> ``model``."""
    return name.rsplit("/", 1)[-1]


def _find(models: list[ServedModel], wanted: str) -> ServedModel | None:
    for model in models:
        if model.name == wanted:
            return model
    for model in models:
        if short_name(model.name) == wanted:
            return model
    return None


@dataclass
class _Cached:
    models: list[ServedModel]
    fetched: float


class ModelCatalogue:
    """Served models of the embedding and reranking services, cached for ``ttl`` seconds.

    ``default_embedding``/``default_reranking`` name each service's default model
    (used when a request names none and it is served; else the first one listed).
    """

    def __init__(
        self,
        embedding: EmbeddingClient,
        reranking: RerankingClient,
        *,
        default_embedding: str = "",
        default_reranking: str = "",
        ttl: float = MODEL_TTL,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._embedding = embedding
        self._reranking = reranking
        self._defaults = {"embedding": default_embedding, "reranking": default_reranking}
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, _Cached] = {}

    async def embedding_models(self) -> list[ServedModel]:
        """The embedding service's models; raises the client's ServiceError if it is down."""
        cached = self._fresh("embedding")
        if cached is not None:
            return cached
        response = await self._embedding.list_models()
        models = [
            ServedModel(m.name, m.dimension, m.max_sequence_length)
            for m in response.models
            if m.available
        ]
        return self._store("embedding", models)

    async def reranking_models(self) -> list[ServedModel]:
        """The reranking service's models; raises the client's ServiceError if it is down."""
        cached = self._fresh("reranking")
        if cached is not None:
            return cached
        response = await self._reranking.list_models()
        models = [
            ServedModel(m.name, 0, m.max_sequence_length) for m in response.models if m.available
        ]
        return self._store("reranking", models)

    async def resolve_embedding(self, name: str | None) -> ServedModel:
        """The embedding model ``name`` means; 404 ``model_not_found`` if none is served."""
        return self._resolve("embedding", await self.embedding_models(), name)

    async def resolve_reranking(self, name: str | None) -> ServedModel:
        """The reranking model ``name`` means; 404 ``model_not_found`` if none is served."""
        return self._resolve("reranking", await self.reranking_models(), name)

    async def listing(self) -> dict[str, list[ServedModel]]:
        """``{"embed": [...], "rerank": [...]}``, leaving out a service that does not answer."""
        found: dict[str, list[ServedModel]] = {}
        for capability, fetch in (
            ("embed", self.embedding_models),
            ("rerank", self.reranking_models),
        ):
            try:
                found[capability] = await fetch()
            except ServiceError:
                found[capability] = []
        return found

    def _fresh(self, service: str) -> list[ServedModel] | None:
        cached = self._cache.get(service)
        if cached is None or self._clock.now() - cached.fetched > self._ttl:
            return None
        return cached.models

    def _store(self, service: str, models: list[ServedModel]) -> list[ServedModel]:
        self._cache[service] = _Cached(models, self._clock.now())
        return models

    def _resolve(self, service: str, models: list[ServedModel], name: str | None) -> ServedModel:
        if name:
            found = _find(models, name)
            if found is None:
                raise ResourceNotFoundError(
                    f"The model '{name}' does not exist or is not served by the {service} "
                    f"service; served: {', '.join(m.name for m in models) or 'none'}",
                    resource_type="model",
                    resource_id=name,
                )
            return found
        default = _find(models, self._defaults[service])
        if default is not None:
            return default
        if not models:
            raise ResourceNotFoundError(
                f"the {service} service serves no model", resource_type="model", resource_id=""
            )
        return models[0]
