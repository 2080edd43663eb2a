"""ProductionLLMService against local OpenAI-compatible stand-ins for LLM hosts (real uvicorn
servers on loopback), with the real all-MiniLM-L6-v2 weights behind its embeddings."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any

import pytest

from servicegrid import LLMRequest, LLMResponse, ProductionLLMService
from servicegrid.clients.enhanced import ConnectionPoolConfig, RetryConfig
from servicegrid.errors import (
    ClientStateError,
    ServiceError,
    ServiceUnavailable,
    ValidationError,
)
from servicegrid.llm import DistributedLLMClient, LLMHost
from servicegrid.settings import ConfigurationError, load_settings
from tests.support.llm_hosts import LLMHostStandIns
from tests.support.openai_standin import OpenAIStandIn

METRIC_KEYS = {
    "generation_count",
    "embedding_count",
    "total_tokens_used",
    "request_rate",
    "error_rate",
    "average_response_time",
}
HEALTH_KEYS = {"status", "metrics", "circuit_breaker", "rate_limiter"}
LLM_ENV = ("SERVICEGRID_LLM_URLS", "SERVICEGRID_LLM_SERVICE", "SERVICEGRID_LLM_MODEL")


@pytest.fixture(scope="module")
def servers() -> Iterator[LLMHostStandIns]:
    with LLMHostStandIns(2) as running:
        yield running


@pytest.fixture
def standins(servers: LLMHostStandIns) -> LLMHostStandIns:
    """The two stand-in hosts, alive, well and with their counts at zero."""
    servers.reset()
    return servers


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)


def hosts_of(standins: LLMHostStandIns) -> list[LLMHost]:
    return [LLMHost(name=s.name, url=s.url) for s in standins]


def service_over(standins: LLMHostStandIns, **options: Any) -> ProductionLLMService:
    return ProductionLLMService(hosts=hosts_of(standins), **options)


async def test_generate_answers_through_a_standin_host(standins: LLMHostStandIns) -> None:
    async with service_over(standins) as service:
        response = await service.generate(LLMRequest(prompt="Hello, how are you?", model="m1"))
    assert isinstance(response, LLMResponse)
    assert response.text == f"Hello from {response.host}"
    assert response.host in {"host1", "host2"}
    assert response.model == "m1"
    assert response.usage["total_tokens"] == 6
    assert response.finish_reason == "stop"
    assert response.latency_ms >= 0.0
    assert sum(s.served for s in standins) == 1


async def test_the_request_becomes_a_chat_completion() -> None:
    with OpenAIStandIn(model="standin") as llm:
        host = LLMHost(name="standin", url=llm.base_url)
        async with ProductionLLMService(hosts=[host], model="default-model") as service:
            await service.generate(
                LLMRequest(prompt="Hi", system="Be brief.", max_tokens=12, temperature=0.0)
            )
            await service.generate(LLMRequest(prompt="Again", model="asked-for"))
        first, second = (request.body for request in llm.requests)
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert (first["model"], first["max_tokens"], first["temperature"]) == (
        "default-model",
        12,
        0.0,
    )
    assert second["messages"] == [{"role": "user", "content": "Again"}]
    assert (second["model"], second["max_tokens"], second["temperature"]) == (
        "asked-for",
        256,
        0.7,
    )


async def test_metrics_count_generations_and_tokens(standins: LLMHostStandIns) -> None:
    async with service_over(standins) as service:
        for _ in range(3):
            await service.generate(LLMRequest(prompt="count me"))
        metrics = service.get_metrics()
    assert metrics.keys() >= METRIC_KEYS
    assert metrics["generation_count"] == 3
    assert metrics["total_tokens_used"] == 18
    assert metrics["embedding_count"] == 0
    assert metrics["error_rate"] == 0.0
    assert metrics["request_rate"] > 0.0
    assert metrics["average_response_time"] > 0.0
    assert metrics["average_response_time_ms"] == pytest.approx(
        1000 * metrics["average_response_time"]
    )
    assert metrics["client"]["total_requests"] == 3
    json.dumps(metrics)


async def test_health_check_has_the_seed_shape(standins: LLMHostStandIns) -> None:
    service = service_over(standins)
    assert (await service.health_check())["status"] == "unknown"
    async with service:
        health = await service.health_check()
        assert health.keys() >= HEALTH_KEYS
        assert health["status"] == "healthy"
        assert health["circuit_breaker"] == {
            "state": "closed",
            "hosts": {"host1": "closed", "host2": "closed"},
        }
        assert health["rate_limiter"]["rate"] == 10.0
        assert health["rate_limiter"]["burst"] == 20
        assert set(health["hosts"]) == {"host1", "host2"}
        assert health["monitor"]["total_checks"] >= 1
        json.dumps(health)

        standins[1].die()
        degraded = await service.health_check()
        assert degraded["status"] == "degraded"
        assert degraded["hosts"]["host2"]["status"] == "unhealthy"
    assert (await service.health_check())["status"] == "unhealthy"


async def test_a_host_returning_500s_has_its_breaker_opened(standins: LLMHostStandIns) -> None:
    failing = standins[0]
    failing.fail(500)
    host = LLMHost(name="failing", url=failing.url)
    service = ProductionLLMService(hosts=[host], retry_config=RetryConfig(max_retries=1))
    async with service:
        for _ in range(5):
            with pytest.raises(ServiceError) as caught:
                await service.generate(LLMRequest(prompt="fail"))
            assert not isinstance(caught.value, ServiceUnavailable)
        with pytest.raises(ServiceUnavailable):
            await service.generate(LLMRequest(prompt="not even sent"))
        health = await service.health_check()
        metrics = service.get_metrics()
    assert failing.served == 5
    assert health["circuit_breaker"] == {"state": "open", "hosts": {"failing": "open"}}
    assert metrics["error_rate"] == 1.0
    assert metrics["generation_count"] == 0


async def test_retries_fail_over_to_a_healthy_host(standins: LLMHostStandIns) -> None:
    standins[0].fail(503)
    retry = RetryConfig(max_retries=3, base_delay=0.01, max_delay=0.02)
    async with service_over(standins, retry_config=retry) as service:
        for _ in range(4):
            assert (await service.generate(LLMRequest(prompt="x"))).host == "host2"
        assert service.get_metrics()["error_rate"] == 0.0


async def test_hosts_come_from_the_environment(
    standins: LLMHostStandIns, monkeypatch: pytest.MonkeyPatch, no_llm_env: None
) -> None:
    monkeypatch.setenv("SERVICEGRID_LLM_URLS", f"one={standins[0].url}")
    monkeypatch.setenv("SERVICEGRID_LLM_MODEL", "env-model")
    async with ProductionLLMService() as service:
        response = await service.generate(LLMRequest(prompt="from the environment"))
    assert (response.host, response.model) == ("one", "env-model")
    assert standins[0].served == 1


async def test_hosts_come_from_settings_passed_in(
    standins: LLMHostStandIns, no_llm_env: None
) -> None:
    settings = load_settings(llm_urls=(standins[1].url,))
    async with ProductionLLMService(settings=settings) as service:
        await service.generate(LLMRequest(prompt="from settings"))
    assert standins[1].served == 1


async def test_no_host_configured_is_a_configuration_error(no_llm_env: None) -> None:
    with pytest.raises(ConfigurationError, match="SERVICEGRID_LLM_URLS"):
        ProductionLLMService()


async def test_a_client_passed_in_is_left_running(standins: LLMHostStandIns) -> None:
    async with DistributedLLMClient(hosts=hosts_of(standins)) as client:
        async with ProductionLLMService(client=client) as service:
            await service.generate(LLMRequest(prompt="shared"))
        answer = await client.chat("still open")
    assert answer.content.startswith("Hello from")


async def test_a_client_with_hosts_of_its_own_is_a_value_error(
    standins: LLMHostStandIns,
) -> None:
    client = DistributedLLMClient(hosts=hosts_of(standins))
    with pytest.raises(ValueError, match="hosts, pool_config"):
        ProductionLLMService(
            client=client, hosts=hosts_of(standins), pool_config=ConnectionPoolConfig()
        )


async def test_generate_before_start_and_after_stop_is_a_client_state_error(
    standins: LLMHostStandIns,
) -> None:
    service = service_over(standins)
    with pytest.raises(ClientStateError, match="start"):
        await service.generate(LLMRequest(prompt="too early"))
    await service.start()
    await service.stop()
    with pytest.raises(ClientStateError, match="stopped"):
        await service.generate(LLMRequest(prompt="too late"))
    assert sum(s.served for s in standins) == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"model": ""}, "model"),
        ({"system": 5}, "system"),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LLMRequest(**{"prompt": "fine", **fields})
    assert caught.value.validation_errors[0]["field"] == field


async def test_generate_takes_only_an_llm_request(standins: LLMHostStandIns) -> None:
    async with service_over(standins) as service:
        with pytest.raises(ValidationError) as caught:
            await service.generate("a bare prompt")  # type: ignore[arg-type]
    assert caught.value.validation_errors[0]["field"] == "request"


async def test_embed_goes_through_a_local_embedding_service(standins: LLMHostStandIns) -> None:
    pytest.importorskip("torch", reason="the models extra (torch) is not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    async with service_over(standins) as service:
        results = await service.embed(["cat", "kitten"])
        one = await service.embed("cat")
        metrics = service.get_metrics()
        with pytest.raises(ValidationError):
            await service.embed([])
    assert [r.dimension for r in results] == [384, 384]
    assert one[0].cached is True
    assert metrics["embedding_count"] == 3
