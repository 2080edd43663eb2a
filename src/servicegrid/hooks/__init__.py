"""Ready-made hooks that turn resilience events into logs or metrics."""

from servicegrid.hooks.logging import LoggingHook

__all__ = ["LoggingHook"]
