"""The real embedding service (MiniLM on the CPU) in a thread with an event loop of its own.

Tests that drive clients from their own loops (``asyncio.run``, other threads,
another interpreter) need the service to live outside those loops.
"""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry

from servicegrid.services.embedding.app import EmbeddingApp, build_embedding_service
from servicegrid.settings import load_settings

__all__ = ["ServiceThread"]


class ServiceThread:
    """The real embedding service on ``127.0.0.1:port``, in a thread with its own loop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app: EmbeddingApp | None = None

    def start(self) -> None:
        async def start() -> EmbeddingApp:
            settings = load_settings(device="cpu")
            built = await build_embedding_service(
                settings, address=f"127.0.0.1:{self.port}", registry=CollectorRegistry()
            )
            await built.running.server.start()
            await built.running.health.set_all(True)
            return built

        self.app = asyncio.run_coroutine_threadsafe(start(), self.loop).result(120)

    def close(self) -> None:
        async def stop(app: EmbeddingApp) -> None:
            await app.running.server.stop(1.0)
            await app.aclose()

        if self.app is not None:
            asyncio.run_coroutine_threadsafe(stop(self.app), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
