"""ServiceClientConfig, BaseServiceClient and how a client takes its configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.grpc_base import BaseServiceClient, ServiceClientConfig
from servicegrid.settings import load_settings


def test_defaults_are_seed_000s() -> None:
    config = ServiceClientConfig(service_url="localhost:50052")
    assert dataclasses.asdict(config) == {
        "service_url": "localhost:50052",
        "timeout": 30.0,
        "retry_attempts": 3,
        "retry_delay": 1.0,
        "circuit_breaker_threshold": 5,
        "circuit_breaker_timeout": 60.0,
        "max_retry_delay": 60.0,
        "exponential_base": 2.0,
        "use_tls": False,
        "tls_cert_path": None,
        "tls_key_path": None,
        "tls_ca_path": None,
        "tenant_id": None,
        "correlation_id": None,
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"service_url": ""}, "service_url"),
        ({"service_url": "local host:1"}, "service_url"),
        ({"service_url": "http://localhost:50052"}, "service_url"),
        ({"service_url": None}, "service_url"),
        ({"service_url": "grpc://"}, "service_url"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"retry_attempts": 2.5}, "retry_attempts"),
        ({"retry_attempts": True}, "retry_attempts"),
        ({"retry_delay": -0.1}, "retry_delay"),
        ({"circuit_breaker_threshold": 0}, "circuit_breaker_threshold"),
        ({"circuit_breaker_timeout": -5}, "circuit_breaker_timeout"),
        ({"max_retry_delay": 0.5}, "max_retry_delay"),
        ({"exponential_base": 0.5}, "exponential_base"),
        ({"use_tls": "yes"}, "use_tls"),
        ({"tls_ca_path": "/ca.pem"}, "tls_ca_path"),
        ({"use_tls": True, "tls_cert_path": "/c.pem"}, "tls_cert_path"),
        ({"use_tls": True, "tls_ca_path": ""}, "tls_ca_path"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"tenant_id": "a\nb"}, "tenant_id"),
        ({"correlation_id": "ünïcode"}, "correlation_id"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    values = {"service_url": "localhost:50052", **changes}
    with pytest.raises(ValueError, match=field):
        ServiceClientConfig(**values)


def test_grpc_target_forms_are_accepted() -> None:
    for target in ("embedding:50052", "dns:///embedding:50052", "unix:/tmp/s.sock", "[::1]:5"):
        assert ServiceClientConfig(target).service_url == target
    assert ServiceClientConfig("grpc://embedding:50052/").service_url == "embedding:50052"


def test_the_config_is_immutable() -> None:
    config = ServiceClientConfig("localhost:50052")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timeout = 1.0  # type: ignore[misc]
    assert dataclasses.replace(config, timeout=60.0).timeout == 60.0


def test_from_settings_takes_the_service_and_the_shared_resilience_values() -> None:
    settings = load_settings(
        embedding_service_url="embed:6000",
        embedding_service_timeout=60.0,
        max_retry_attempts=4,
        circuit_breaker_threshold=9,
    )
    config = ServiceClientConfig.from_settings(settings, "embedding", tenant_id="acme")
    assert config.service_url == "embed:6000"
    assert config.timeout == 60.0
    assert config.retry_attempts == 4
    assert config.circuit_breaker_threshold == 9
    assert config.tenant_id == "acme"
    with pytest.raises(ValueError, match="unknown service"):
        ServiceClientConfig.from_settings(settings, "nope")


def test_base_service_client_is_seed_000s_abstract_interface() -> None:
    with pytest.raises(TypeError):
        BaseServiceClient("localhost:1")  # type: ignore[abstract]

    class Minimal(BaseServiceClient):
        async def health_check(self) -> dict[str, Any]:
            return {"status": "healthy"}

        async def get_stats(self) -> dict[str, Any]:
            return {}

    client = Minimal("localhost:1")
    assert (client.service_url, client.timeout) == ("localhost:1", 30.0)
    assert isinstance(EmbeddingClient("localhost:1", registry=None), BaseServiceClient)


def test_a_client_takes_a_url_and_timeout_or_a_config() -> None:
    positional = EmbeddingClient("localhost:50052", registry=None)
    assert (positional.service_url, positional.timeout) == ("localhost:50052", 30.0)
    keywords = EmbeddingClient(service_url="localhost:50052", timeout=60.0, registry=None)
    assert keywords.config.timeout == 60.0
    config = ServiceClientConfig("localhost:50052", retry_attempts=5, circuit_breaker_threshold=2)
    configured = EmbeddingClient(config=config, registry=None)
    assert configured.config is config
    assert configured.retry.attempts == 5
    assert configured.circuit_breaker.failure_threshold == 2

    with pytest.raises(TypeError, match="not both"):
        EmbeddingClient("localhost:1", config=config, registry=None)
    with pytest.raises(TypeError, match="service_url"):
        EmbeddingClient(registry=None)
    with pytest.raises(ValueError, match="timeout"):
        EmbeddingClient("localhost:1", timeout=0, registry=None)


def test_unreadable_tls_files_fail_at_construction(tmp_path: Path) -> None:
    config = ServiceClientConfig(
        "localhost:1", use_tls=True, tls_ca_path=str(tmp_path / "missing-ca.pem")
    )
    with pytest.raises(ValueError, match=r"missing-ca\.pem"):
        EmbeddingClient(config=config, registry=None)


async def test_a_bad_per_call_timeout_is_a_value_error() -> None:
    client = EmbeddingClient("localhost:1", registry=None)
    with pytest.raises(ValueError, match="timeout"):
        await client.list_models(timeout=-1)
    await client.aclose()
