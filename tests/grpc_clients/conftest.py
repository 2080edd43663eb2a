"""Fixtures: a real grpc.aio server, a fake clock, and clients closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from servicegrid.clients.grpc_base import GrpcServiceClient, ServiceClientConfig
from servicegrid.testing import FakeClock
from tests.grpc_clients.servers import FAST_RECONNECT, ClientFactory, GrpcTestServer
from tests.support.faulty_server import free_port


@pytest.fixture
async def grpc_server() -> AsyncIterator[GrpcTestServer]:
    server = GrpcTestServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[ClientFactory]:
    """``make_client(EmbeddingClient, target, retry_attempts=2, ...)``: closed after the test.

    Config fields go to ``ServiceClientConfig``; ``clock`` defaults to the fake
    clock, and ``channel_options``, ``registry`` and the rest go to the client.
    """
    made: list[GrpcServiceClient] = []
    client_keys = {
        "service_name",
        "channel",
        "channel_options",
        "backoff",
        "rng",
        "total_timeout",
        "hooks",
        "extra_policies",
        "registry",
        "clock",
    }

    def make(cls: type[GrpcServiceClient], target: str, **kwargs: Any) -> Any:
        options = {key: kwargs.pop(key) for key in list(kwargs) if key in client_keys}
        options.setdefault("clock", clock)
        options.setdefault("channel_options", FAST_RECONNECT)
        client = cls(config=ServiceClientConfig(service_url=target, **kwargs), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening on it."""
    return free_port()
