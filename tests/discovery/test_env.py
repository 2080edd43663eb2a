"""The environment backend and seed 002's discovery calls over it."""

from __future__ import annotations

import asyncio

import pytest

from servicegrid import discover_all_async, discover_service, discover_service_async
from servicegrid.discovery import Discovery, EnvBackend, ServiceName, discovery_metadata_async
from servicegrid.discovery.env import instance_from_locator
from servicegrid.errors import DiscoveryError, UnknownServiceError
from servicegrid.settings import load_settings


def env_discovery(**overrides: object) -> Discovery:
    return Discovery([EnvBackend(load_settings(**overrides))])


async def test_seed_002_discovery_calls_with_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SERVICE_URL", "http://users.internal:8001")
    monkeypatch.setenv("USER_SERVICE_GRPC_TARGET", "users.internal:50061")
    monkeypatch.setenv("QUESTION_SERVICE_URL", "http://questions.internal:8002")
    # seed 002, as written
    url = await discover_service_async("USER_SERVICE")
    assert url == "http://users.internal:8001"
    assert await discover_service_async("USER_SERVICE", protocol="grpc") == "users.internal:50061"
    assert await discover_service_async("question-service") == "http://questions.internal:8002"
    assert await discover_all_async("user-service") == ["http://users.internal:8001"]
    assert discover_service("USER_SERVICE") == "http://users.internal:8001"


async def test_catalogue_services_default_to_their_local_addresses() -> None:
    found = env_discovery()
    assert (await found.resolve("USER_SERVICE")).locators == ["http://localhost:8001"]
    assert (await found.resolve("API_GATEWAY", "grpc")).locators == ["localhost:50063"]
    assert (await found.resolve("EMBEDDING_SERVICE")).locators == ["localhost:50052"]
    assert (await found.resolve("integration")).locators == ["http://localhost:8005/api"]


async def test_model_services_come_from_their_service_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", "gpu-box:6000")
    found = Discovery.from_settings(load_settings())
    assert [b.name for b in found.backends] == ["env"]
    assert (await found.resolve("embedding-service")).locators == ["gpu-box:6000"]


async def test_other_services_come_from_their_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_SERVICE_URL", "https://billing.example:8443/v2")
    monkeypatch.setenv("CHROMA_SERVER_URL", "http://chroma:6003")
    found = Discovery.from_settings(load_settings())
    assert (await found.resolve("BILLING_SERVICE")).locators == ["https://billing.example:8443/v2"]
    assert (await found.resolve("billing-service")).locators == ["https://billing.example:8443/v2"]
    with pytest.raises(UnknownServiceError):
        await found.resolve("CHROMA")  # CHROMA_SERVER_URL names "chroma", not CHROMA_URL


async def test_a_discovery_address_in_the_environment_is_not_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", "discovery:///embedding-service")
    with pytest.raises(UnknownServiceError):
        await Discovery.from_settings(load_settings()).resolve("EMBEDDING_SERVICE")


async def test_unknown_names_are_typed_errors() -> None:
    with pytest.raises(UnknownServiceError, match="NOPE_URL"):
        await discover_service_async("NOPE")
    with pytest.raises(UnknownServiceError):
        discover_service("not-a-service")


async def test_metadata_says_where_the_answer_came_from() -> None:
    info = await discovery_metadata_async("USER_SERVICE")
    assert info["urls"] == ["http://localhost:8001"]
    assert (info["backend"], info["instances"], info["stale"]) == ("env", 1, False)


def test_the_sync_call_works_inside_a_running_loop_too() -> None:
    async def inside() -> str:
        return discover_service("USER_SERVICE", "grpc")

    assert asyncio.run(inside()) == "localhost:50061"


def test_locators_become_instances() -> None:
    assert instance_from_locator("http://a:81/api", "http").url == "http://a:81/api"
    assert instance_from_locator("https://a", "http").port == 443
    assert instance_from_locator("[::1]:50052", "grpc").address == "[::1]:50052"
    for bad in ("unix:/tmp/s", "a", "http://a:1"):
        with pytest.raises(ValueError, match="not a host:port gRPC target"):
            instance_from_locator(bad, "grpc")


async def test_an_unbalanceable_target_is_a_discovery_error() -> None:
    backend = EnvBackend(load_settings(embedding_service_url="unix:/tmp/embedding.sock"))
    with pytest.raises(DiscoveryError, match="cannot balance"):
        await backend.lookup(ServiceName.parse("EMBEDDING_SERVICE"), "grpc")


def test_backends_are_configured_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [b.name for b in Discovery.from_settings(load_settings()).backends] == ["env"]
    monkeypatch.setenv("CONSUL_HOST", "consul.local")
    monkeypatch.setenv("ETCD_HOST", "etcd.local")
    monkeypatch.setenv("USE_ISTIO_DNS", "true")
    monkeypatch.setenv("SERVICEGRID_DISCOVERY_ORDER", "etcd,dns,consul,env")
    names = [b.name for b in Discovery.from_settings(load_settings()).backends]
    assert names == ["etcd", "dns", "consul", "env"]
