"""The document processing service (:50054)."""
