"""The embedding cache: SHA-256 keys, LRU eviction, hit rate."""

from __future__ import annotations

import pytest

from servicegrid.models.cache import LRUCache, cache_key


def test_keys_separate_model_normalisation_and_text() -> None:
    base = cache_key("m", "text", normalize=False)
    assert len(base) == 32
    assert base == cache_key("m", "text", normalize=False)
    assert base != cache_key("m", "text", normalize=True)
    assert base != cache_key("n", "text", normalize=False)
    assert base != cache_key("m", "text ", normalize=False)
    # length-prefixed parts: moving a boundary changes the key
    assert cache_key("ab", "c", normalize=False) != cache_key("a", "bc", normalize=False)


def test_least_recently_used_goes_first_and_hits_are_counted() -> None:
    cache: LRUCache[int] = LRUCache(max_entries=2)
    a, b, c = (cache_key("m", t, normalize=False) for t in "abc")
    cache.put(a, 1)
    cache.put(b, 2)
    assert cache.get(a) == 1  # a is now the most recent
    cache.put(c, 3)  # evicts b
    assert cache.get(b) is None
    assert cache.get(c) == 3
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.hit_rate == pytest.approx(2 / 3)
    assert cache.get_status()["size"] == 2


def test_a_zero_sized_cache_stores_nothing_and_bad_sizes_are_refused() -> None:
    cache: LRUCache[int] = LRUCache(max_entries=0)
    key = cache_key("m", "x", normalize=False)
    cache.put(key, 1)
    assert cache.get(key) is None
    assert cache.hit_rate == 0.0
    with pytest.raises(ValueError, match="max_entries"):
        LRUCache(max_entries=-1)
