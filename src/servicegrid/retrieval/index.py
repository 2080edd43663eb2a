"""The chunk index in Qdrant: a dense and a BM25 sparse vector per chunk, searched apart."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Collection, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException

from servicegrid.client_state import ClientState
from servicegrid.errors import ClientStateError, ServiceUnavailableError
from servicegrid.retrieval.chunks import Chunk, Hit, Source, SparseVector
from servicegrid.retrieval.payloads import Scope, chunk_of, match, payload_of, scope_filter

if TYPE_CHECKING:
    from servicegrid.settings import Settings

__all__ = ["DENSE", "NAMESPACE", "SPARSE", "HybridIndex", "Scope"]

NAMESPACE = uuid.UUID("5d6c3b0e-7f43-4d2a-9a57-0c1e8b6f2a91")
"""uuid5 namespace of point ids: a chunk's point is ``uuid5(NAMESPACE, chunk.id)``."""

DENSE = "dense"
SPARSE = "bm25"
_KEYWORD_FIELDS = ("source", "ref", "user_id")


def _dense_size(info: models.CollectionInfo) -> int | None:
    vectors = info.config.params.vectors
    if isinstance(vectors, dict) and DENSE in vectors:
        return vectors[DENSE].size
    return None


P = ParamSpec("P")
R = TypeVar("R")


def _qdrant_failures(
    method: Callable[Concatenate[HybridIndex, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[HybridIndex, P], Coroutine[Any, Any, R]]:
    """Qdrant that cannot be reached or answers an error becomes ServiceUnavailableError
    (a 503 to the caller), never a foreign exception."""

    @functools.wraps(method)
    async def guarded(self: HybridIndex, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except (ApiException, httpx.HTTPError, OSError) as error:
            raise ServiceUnavailableError(
                f"the index (Qdrant at {self.url or self.path}) failed: "
                f"{type(error).__name__}: {error}",
                service="qdrant",
            ) from error
        except RuntimeError as error:
            if "already accessed" not in str(error):
                raise
            raise ServiceUnavailableError(
                f"the index folder {self.path} is open in another process: local mode serves "
                "one process; give each its own SERVICEGRID_QDRANT_PATH or share a server "
                "with QDRANT_URL",
                service="qdrant",
            ) from error

    return guarded


class HybridIndex:
    """Chunks in a Qdrant collection, searched by dense vector or by BM25.

    Give ``url`` for a Qdrant server, or ``path`` for Qdrant's local mode in that folder
    (created if missing). Local mode locks the folder: one process, and one open index,
    may use it at a time; several workers need a server. Search results filtered by a
    :class:`Scope`; :meth:`get_state`/:meth:`set_state` keep small JSON values in a second
    collection, ``<collection>_state``, so they live wherever the index does.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        path: str | None = None,
        api_key: str | None = None,
        collection: str = "servicegrid_chunks",
    ) -> None:
        if (url is None) == (path is None):
            raise ValueError("give exactly one of url (a Qdrant server) or path (local mode)")
        self.url = url
        self.path = path
        self.collection = collection
        self.state_collection = f"{collection}_state"
        self._api_key = api_key
        self._state = ClientState.UNOPENED
        self._client: AsyncQdrantClient | None = None
        self._dimension: int | None = None
        self._has_state_collection = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HybridIndex:
        """The index ``QDRANT_URL`` names, else local mode in ``SERVICEGRID_QDRANT_PATH``."""
        return cls(
            url=settings.qdrant_url,
            path=None if settings.qdrant_url else settings.qdrant_path,
            api_key=settings.qdrant_api_key,
            collection=settings.retrieval_collection,
        )

    @property
    def backend(self) -> str:
        """``local`` (Qdrant's local mode in a folder) or ``server``."""
        return "server" if self.url is not None else "local"

    @property
    def dimension(self) -> int | None:
        """The dense vector size; None until the collection is known to exist."""
        return self._dimension

    # ---- lifecycle ------------------------------------------------------------------------

    @_qdrant_failures
    async def open(self) -> None:
        """Connect (local mode: open and lock the folder) and read the collection's dense size
        if it exists. Idempotent; raises ClientStateError once closed."""
        if self._state is ClientState.OPENED:
            return
        if self._state is ClientState.CLOSED:
            raise ClientStateError("the index is closed; make a new one")
        if self.path is not None:
            await asyncio.to_thread(Path(self.path).mkdir, parents=True, exist_ok=True)
            client = AsyncQdrantClient(path=self.path)
        else:
            client = AsyncQdrantClient(url=self.url, api_key=self._api_key)
        self._client = client
        self._state = ClientState.OPENED
        try:
            await self._read_dimension()
        except BaseException:
            # a server that is down: leave the index unopened, so open() may be tried again
            self._client, self._state = None, ClientState.UNOPENED
            await client.close()
            raise

    async def aclose(self) -> None:
        """Disconnect (local mode: release the folder). Idempotent."""
        self._state = ClientState.CLOSED
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _opened(self) -> AsyncQdrantClient:
        if self._client is None:
            state = "closed" if self._state is ClientState.CLOSED else "not open yet"
            raise ClientStateError(f"the index is {state}")
        return self._client

    async def _read_dimension(self) -> int | None:
        client = self._opened()
        if await client.collection_exists(self.collection):
            self._dimension = _dense_size(await client.get_collection(self.collection))
        return self._dimension

    # ---- the collection -------------------------------------------------------------------

    @_qdrant_failures
    async def ensure_collection(self, dimension: int) -> None:
        """Create the collection for dense vectors of ``dimension`` floats if it is missing.

        Raises ValueError when it exists with another dense size (a different embedding
        model: re-index into a new collection).
        """
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        client = self._opened()
        existing = await self._read_dimension()
        if existing is not None:
            if existing != dimension:
                raise ValueError(
                    f"collection {self.collection!r} holds dense vectors of size {existing}, "
                    f"not {dimension}"
                )
            return
        await client.create_collection(
            self.collection,
            vectors_config={
                DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        # local mode has no payload indexes (it scans), and warns when asked for one
        if self.url is not None:
            for field in _KEYWORD_FIELDS:
                await client.create_payload_index(
                    self.collection, field, field_schema=models.PayloadSchemaType.KEYWORD
                )
        self._dimension = dimension

    async def _ready(self) -> AsyncQdrantClient:
        client = self._opened()
        if self._dimension is None and await self._read_dimension() is None:
            raise ClientStateError(
                f"collection {self.collection!r} does not exist: call ensure_collection first"
            )
        return client

    async def _exists(self) -> AsyncQdrantClient | None:
        """The client, or None when there is no collection yet (nothing to find)."""
        client = self._opened()
        if self._dimension is None and await self._read_dimension() is None:
            return None
        return client

    # ---- writing --------------------------------------------------------------------------

    @_qdrant_failures
    async def upsert(
        self,
        chunks: Sequence[Chunk],
        *,
        sparse: Sequence[SparseVector],
        dense: Sequence[Sequence[float]] | None,
    ) -> None:
        """Store ``chunks``, replacing those with the same ids; ``sparse``/``dense`` are in the
        same order. ``dense=None`` stores BM25 only (no embedding service), so only sparse
        search finds them until indexed again. Raises ClientStateError without a collection."""
        if len(sparse) != len(chunks) or (dense is not None and len(dense) != len(chunks)):
            raise ValueError("chunks, sparse and dense must have the same length")
        client = await self._ready()
        if not chunks:
            return
        points = []
        for i, chunk in enumerate(chunks):
            vector: dict[str, Any] = {
                SPARSE: models.SparseVector(indices=sparse[i].indices, values=sparse[i].values)
            }
            if dense is not None:
                vector[DENSE] = list(dense[i])
            points.append(
                models.PointStruct(
                    id=str(uuid.uuid5(NAMESPACE, chunk.id)),
                    vector=vector,
                    payload=payload_of(chunk, has_dense=dense is not None),
                )
            )
        await client.upsert(self.collection, points=points, wait=True)

    @_qdrant_failures
    async def delete(self, *, source: Source, ref: str, keep: Collection[str] = ()) -> None:
        """Delete the chunks of ``source`` + ``ref`` whose chunk id is not in ``keep``."""
        client = await self._exists()
        if client is None:
            return
        stale = models.Filter(
            must=[match("source", source), match("ref", ref)],
            must_not=[models.FieldCondition(key="chunk_id", match=models.MatchAny(any=list(keep)))]
            if keep
            else None,
        )
        await client.delete(self.collection, points_selector=stale, wait=True)

    # ---- reading --------------------------------------------------------------------------

    @_qdrant_failures
    async def search_dense(self, vector: Sequence[float], *, where: Scope, limit: int) -> list[Hit]:
        """The ``limit`` chunks in scope nearest ``vector`` (cosine), best first."""
        return await self._query(list(vector), using=DENSE, where=where, limit=limit)

    @_qdrant_failures
    async def search_sparse(self, vector: SparseVector, *, where: Scope, limit: int) -> list[Hit]:
        """The ``limit`` chunks in scope with the highest BM25 score, best first."""
        if not vector.indices:
            return []
        query = models.SparseVector(indices=vector.indices, values=vector.values)
        return await self._query(query, using=SPARSE, where=where, limit=limit)

    async def _query(
        self,
        query: list[float] | models.SparseVector,
        *,
        using: str,
        where: Scope,
        limit: int,
    ) -> list[Hit]:
        client = await self._exists()
        if client is None or not where.sources or limit < 1:
            return []
        response = await client.query_points(
            self.collection,
            query=query,
            using=using,
            query_filter=scope_filter(where),
            limit=limit,
            with_payload=True,
        )
        return [Hit(chunk_of(point.payload or {}), point.score) for point in response.points]

    @_qdrant_failures
    async def count(
        self, *, source: Source | None = None, ref: str | None = None, user_id: str | None = None
    ) -> int:
        """How many chunks there are, of ``source``, ``ref`` and ``user_id`` where given."""
        client = await self._exists()
        if client is None:
            return 0
        conditions: list[models.Condition] = []
        if source is not None:
            conditions.append(match("source", source))
        if ref is not None:
            conditions.append(match("ref", ref))
        if user_id is not None:
            conditions.append(match("user_id", user_id))
        result = await client.count(
            self.collection, count_filter=models.Filter(must=conditions), exact=True
        )
        return result.count

    # ---- bookkeeping ----------------------------------------------------------------------

    @_qdrant_failures
    async def get_state(self, key: str) -> dict[str, Any] | None:
        """The value last set under ``key``, or None."""
        client = self._opened()
        if not await client.collection_exists(self.state_collection):
            return None
        records = await client.retrieve(
            self.state_collection, ids=[str(uuid.uuid5(NAMESPACE, key))], with_payload=True
        )
        if not records or records[0].payload is None:
            return None
        value: dict[str, Any] = records[0].payload["value"]
        return value

    @_qdrant_failures
    async def set_state(self, key: str, value: dict[str, Any]) -> None:
        """Keep the JSON object ``value`` under ``key``, replacing what was there."""
        client = self._opened()
        if not self._has_state_collection:
            if not await client.collection_exists(self.state_collection):
                await client.create_collection(
                    self.state_collection,
                    vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT),
                )
            self._has_state_collection = True
        point = models.PointStruct(
            id=str(uuid.uuid5(NAMESPACE, key)),
            vector=[1.0],
            payload={"key": key, "value": value},
        )
        await client.upsert(self.state_collection, points=[point], wait=True)
