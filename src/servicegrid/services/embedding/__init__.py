"""The embedding service (:50052)."""
