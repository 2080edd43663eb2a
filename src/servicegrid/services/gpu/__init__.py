"""The GPU management service (:50051)."""
