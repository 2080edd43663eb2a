"""The reranking service (:50053)."""
