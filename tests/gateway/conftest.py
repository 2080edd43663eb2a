"""Real model services (MiniLM on the CPU) in a thread of their own, and gateways over them.

The services live on their own event loop, so a test may block its own (the
sync ``openai`` client, schemathesis) while the gateway still reaches them.
Every async test here runs on the session's loop, as the shared clients do.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from servicegrid.clients import EmbeddingClient, RerankingClient, ServiceClientConfig
from servicegrid.gateway import GatewayClients, create_app
from servicegrid.settings import Settings, load_settings

MAX_ITEMS = 32
MAX_CHARS = 2_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only this folder's tests over the shared services (the hook sees every collected test,
    # and other folders have fixtures called `services` too); chat and documents keep their loops.
    marker = pytest.mark.asyncio(loop_scope="session")
    here = Path(__file__).resolve().parent
    for item in items:
        if here not in Path(item.path).resolve().parents:
            continue
        fixtures = getattr(item, "fixturenames", ())
        if "services" in fixtures and asyncio.iscoroutinefunction(getattr(item, "function", None)):
            item.add_marker(marker, append=False)


class ModelServices:
    """Embedding and reranking services on a loop in a background thread."""

    def __init__(self) -> None:
        pytest.importorskip("torch", reason="the models extra (torch) is not installed")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from servicegrid.services.embedding.app import build_embedding_service
        from servicegrid.services.reranking.app import build_reranking_service

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = load_settings(
            device="cpu", max_items_per_request=1_000, max_text_chars=50_000
        )
        self.build_embedding = build_embedding_service
        self.embedding = self.start(build_embedding_service)
        self.reranking = self.start(build_reranking_service)

    def run(self, coroutine: Awaitable[Any], timeout: float = 120) -> Any:
        async def wrapped() -> Any:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def start(self, build: Callable[..., Awaitable[Any]]) -> Any:
        async def start() -> Any:
            built = await build(self.settings, address="127.0.0.1:0", registry=CollectorRegistry())
            await built.running.server.start()
            await built.running.health.set_all(True)
            return built

        return self.run(start())

    def stop(self, built: Any) -> None:
        async def stop() -> None:
            await built.running.server.stop(0.5)
            await built.aclose()

        self.run(stop(), 60)

    def close(self) -> None:
        self.stop(self.embedding)
        self.stop(self.reranking)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="session")
def services() -> Iterator[ModelServices]:
    running = ModelServices()
    try:
        yield running
    finally:
        running.close()


def quick(port: int) -> ServiceClientConfig:
    """A client config that gives up fast on a dead upstream."""
    return ServiceClientConfig(
        service_url=f"127.0.0.1:{port}",
        timeout=20.0,
        retry_attempts=2,
        retry_delay=0.05,
        max_retry_delay=0.1,
    )


def gateway_settings(services: ModelServices, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_service_url": f"127.0.0.1:{services.embedding.running.port}",
        "reranking_service_url": f"127.0.0.1:{services.reranking.running.port}",
        "max_items_per_request": MAX_ITEMS,
        "max_text_chars": MAX_CHARS,
    }
    return load_settings(**{**values, **overrides})


def make_clients(embedding_port: int, reranking_port: int) -> GatewayClients:
    return GatewayClients(
        embedding=EmbeddingClient(config=quick(embedding_port), registry=None),
        reranking=RerankingClient(config=quick(reranking_port), registry=None),
    )


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def clients(services: ModelServices) -> AsyncIterator[GatewayClients]:
    made = make_clients(services.embedding.running.port, services.reranking.running.port)
    try:
        yield made
    finally:
        await made.aclose()


AppMaker = Callable[..., FastAPI]


@pytest.fixture
def make_app(services: ModelServices, clients: GatewayClients) -> AppMaker:
    """``make_app(**settings overrides)``: a gateway over the shared clients."""

    def make(**overrides: Any) -> FastAPI:
        return create_app(gateway_settings(services, **overrides), clients=clients)

    return make


def http(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://gateway", headers=headers
    )


@pytest_asyncio.fixture(loop_scope="session")
async def api(make_app: AppMaker) -> AsyncIterator[httpx.AsyncClient]:
    """An open gateway (no keys, no rate limit) over the shared services."""
    async with http(make_app()) as client:
        yield client


@pytest.fixture(scope="module")
def make_app_for_module(services: ModelServices) -> Iterator[AppMaker]:
    """``make_app`` for module-scoped servers, over clients of their own."""
    made = make_clients(services.embedding.running.port, services.reranking.running.port)

    def make(**overrides: Any) -> FastAPI:
        return create_app(gateway_settings(services, **overrides), clients=made)

    yield make
    services.run(made.aclose())
