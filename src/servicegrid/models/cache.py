"""An LRU cache of embeddings keyed by SHA-256 (seed 004), with hit and miss counts.

The embedding service caches whole answers in it; the bi-encoder reranker, the
vectors of the texts it has measured. Neither is thread-safe: its owner confines it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from servicegrid._validate import check_count

__all__ = ["LRUCache", "cache_key"]

V = TypeVar("V")


def cache_key(model: str, text: str, *, normalize: bool) -> bytes:
    """SHA-256 of model, normalisation and text: equal keys mean equal embeddings."""
    digest = hashlib.sha256()
    for part in (model, "1" if normalize else "0", text):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.digest()


class LRUCache(Generic[V]):
    """At most ``max_entries`` values; the least recently used goes first. Event-loop confined."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = check_count("max_entries", max_entries, minimum=0)
        self._entries: OrderedDict[bytes, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: bytes, value: V) -> None:
        if self.max_entries == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); 0 before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def get_status(self) -> dict[str, Any]:
        return {
            "size": len(self._entries),
            "max_entries": self.max_entries,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
        }
