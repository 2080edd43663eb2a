"""DistributedLLMClient against real local OpenAI-compatible servers (the stand-ins)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from servicegrid.discovery import Discovery, StaticBackend
from servicegrid.errors import ConnectError, ConnectionLost, ServiceUnavailable
from servicegrid.llm import DistributedLLMClient, LLMHost, LoadBalancingStrategy
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.resilience.events import BreakerTransitioned, Event
from tests.support.llm_hosts import LLMHostStandIn, LLMHostStandIns

CHAT = "/v1/chat/completions"
PAYLOAD = {"model": "standin-llm", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def servers() -> Iterator[LLMHostStandIns]:
    with LLMHostStandIns(3) as running:
        yield running


@pytest.fixture
def standins(servers: LLMHostStandIns) -> LLMHostStandIns:
    """The three stand-ins, alive, well and with their counts at zero."""
    servers.reset()
    return servers


def hosts_of(standins: LLMHostStandIns) -> list[LLMHost]:
    return [LLMHost(name=s.name, url=s.url) for s in standins]


async def post_many(client: DistributedLLMClient, total: int, concurrency: int = 50) -> list[int]:
    """POST ``total`` chat completions, ``concurrency`` at a time; their statuses."""
    statuses: list[int] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            statuses.append((await client.post(CHAT, json=PAYLOAD)).status_code)

    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return statuses


async def test_seed_004_example_flow(standins: LLMHostStandIns) -> None:
    hosts = [
        LLMHost(name="host1", url=f"{standins[0].url}/v1", weight=2.0),
        LLMHost(name="host2", url=standins[1].url, weight=1.0),
    ]
    client = DistributedLLMClient(hosts=hosts, strategy=LoadBalancingStrategy.WEIGHTED_RANDOM)
    await client.start()
    response = await client.post("/v1/chat/completions", json=PAYLOAD)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith("Hello from host")
    health = await client.health_check_all()
    assert {name: status["status"] for name, status in health.items()} == {
        "host1": "healthy",
        "host2": "healthy",
    }
    assert health["host1"]["circuit_breaker"] == "closed"
    assert health["host1"]["response_time_ms"] > 0
    await client.stop()


@pytest.mark.parametrize(
    "strategy", [LoadBalancingStrategy.ROUND_ROBIN, LoadBalancingStrategy.POWER_OF_TWO_CHOICES]
)
async def test_a_thousand_requests_with_one_host_dead_and_one_slow_all_succeed(
    standins: LLMHostStandIns, strategy: LoadBalancingStrategy
) -> None:
    fast, slow, dead = standins
    slow.slow(0.02)
    dead.die()
    requests_when_opened: dict[str, int] = {}

    def on_open(event: Event) -> None:
        if isinstance(event, BreakerTransitioned) and event.new == "open":
            requests_when_opened[event.name] = client.host_metrics(event.name).requests

    client = DistributedLLMClient(hosts_of(standins), strategy, hooks=[on_open])
    async with client:
        statuses = await post_many(client, 1000)
    assert statuses == [200] * 1000
    assert fast.served + slow.served == 1000
    assert client.host_metrics("host3").circuit_breaker == "open"
    assert client.host_metrics("host3").requests == requests_when_opened["host3"]
    metrics = client.get_metrics()
    assert (metrics["total_requests"], metrics["total_errors"]) == (1000, 0)
    assert metrics["failovers"] == metrics["hosts"]["host3"]["errors"] >= 5


async def test_power_of_two_choices_sends_less_to_the_slow_host_than_round_robin(
    standins: LLMHostStandIns,
) -> None:
    slow = standins[1]
    slow.slow(0.05)
    served = {}
    for strategy in (LoadBalancingStrategy.ROUND_ROBIN, LoadBalancingStrategy.POWER_OF_TWO_CHOICES):
        standins.reset()
        slow.slow(0.05)
        async with DistributedLLMClient(hosts_of(standins), strategy) as client:
            assert await post_many(client, 300, concurrency=10) == [200] * 300
        served[strategy] = slow.served
    assert (
        served[LoadBalancingStrategy.POWER_OF_TWO_CHOICES]
        < (served[LoadBalancingStrategy.ROUND_ROBIN])
    )


async def test_an_open_breaker_lets_a_trial_through_once_the_host_is_back(
    standins: LLMHostStandIns,
) -> None:
    host1 = standins[0]
    host1.die()
    config = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=0.1)
    async with DistributedLLMClient(hosts_of(standins), circuit_breaker=config) as client:
        await client.post(CHAT, json=PAYLOAD)
        assert client.host_metrics("host1").circuit_breaker == "open"
        host1.revive()

        async def until_served() -> None:
            while host1.served == 0:
                assert (await client.post(CHAT, json=PAYLOAD)).status_code == 200

        await asyncio.wait_for(until_served(), 10)
        assert client.host_metrics("host1").circuit_breaker == "closed"


# ---- streams -----------------------------------------------------------------------------


async def test_a_stream_that_fails_before_its_first_byte_fails_over(
    standins: LLMHostStandIns,
) -> None:
    host1, host2, _ = standins
    host1.break_streams_after(0)  # headers sent, then the connection drops
    host2.fail(503)
    async with DistributedLLMClient(hosts_of(standins)) as client:
        deltas = [text async for text in client.stream_chat("Hi", model="m")]
        assert "".join(deltas) == "Hello from host3"
        assert (host1.served, host2.served) == (1, 1)
        metrics = client.get_metrics()["hosts"]
        assert metrics["host1"]["last_error"].startswith("ConnectionLost")
        assert "HTTP 503" in metrics["host2"]["last_error"]


async def test_a_stream_that_fails_after_its_first_byte_ends_in_a_typed_error(
    standins: LLMHostStandIns,
) -> None:
    for standin in standins:
        standin.break_streams_after(2)  # the role chunk and "Hello", then the cut
    deltas: list[str] = []
    async with DistributedLLMClient(hosts_of(standins)) as client:

        async def read() -> None:
            async for text in client.stream_chat("Hi"):
                deltas.append(text)

        with pytest.raises(ConnectionLost, match="host1"):
            await read()
        assert deltas == ["Hello"]  # relayed as it came, before the failure
        assert sum(s.served for s in standins) == 1  # and never retried
        assert client.host_metrics("host1").errors == 1
        assert client.get_metrics()["total_errors"] == 1


async def test_the_raw_stream_passes_server_sent_events_through(
    standins: LLMHostStandIns,
) -> None:
    async with DistributedLLMClient(hosts_of(standins)) as client:
        body = {**PAYLOAD, "stream": True}
        async with client.stream("POST", CHAT, json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in response.aiter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        assert all(line.startswith("data: ") for line in lines)
        assert client.host_metrics("host1").in_flight == 0
        assert client.host_metrics("host1").successes == 1


# ---- hedging, hosts, chat, health --------------------------------------------------------


async def test_hedging_takes_the_fast_hosts_answer(standins: LLMHostStandIns) -> None:
    host1, host2, _ = standins
    host1.slow(5.0)
    async with DistributedLLMClient(hosts_of(standins), hedge_after=0.05) as client:
        answer = await client.chat("Hi", idempotent=True)
        assert answer.host == "host2"
        assert (host1.served, host2.served) == (1, 1)
        assert client.host_metrics("host1").in_flight == 0
        assert client.get_metrics()["hedged_requests"] == 1


async def test_disable_and_enable_hosts(standins: LLMHostStandIns) -> None:
    host1 = standins[0]
    async with DistributedLLMClient(hosts_of(standins)) as client:
        client.disable_host("host1")
        assert await post_many(client, 6, concurrency=1) == [200] * 6
        assert host1.served == 0
        assert (await client.health_check_all())["host1"]["status"] == "disabled"
        client.enable_host("host1")
        assert await post_many(client, 6, concurrency=1) == [200] * 6
        assert host1.served == 2


async def test_with_every_host_dead_the_last_error_then_open_breakers_refuse(
    standins: LLMHostStandIns,
) -> None:
    for standin in standins:
        standin.die()
    config = CircuitBreakerConfig(failure_threshold=1)
    async with DistributedLLMClient(hosts_of(standins), circuit_breaker=config) as client:
        with pytest.raises(ConnectError, match="host3"):  # the last host's own error
            await client.post(CHAT, json=PAYLOAD)
        with pytest.raises(ServiceUnavailable):
            await client.post(CHAT, json=PAYLOAD)


async def test_chat_parses_the_answer(standins: LLMHostStandIns) -> None:
    async with DistributedLLMClient(hosts_of(standins)) as client:
        answer = await client.chat([{"role": "user", "content": "Hi"}], model="standin-llm")
    assert answer.content == "Hello from host1"
    assert (answer.model, answer.finish_reason, answer.host) == ("standin-llm", "stop", "host1")
    assert answer.usage["total_tokens"] == 6
    assert answer.raw["object"] == "chat.completion"


async def test_health_checks_every_host(standins: LLMHostStandIns) -> None:
    _, host2, host3 = standins
    host2.health(404)  # a server without /health: its model list answers instead
    host3.die()
    async with DistributedLLMClient(hosts_of(standins)) as client:
        health = await client.health_check_all()
    assert health["host1"]["status"] == "healthy"
    assert health["host2"]["status"] == "healthy"
    assert host2.count("models") == 1
    assert health["host3"]["status"] == "unhealthy"
    assert health["host3"]["error"].startswith("ConnectError")


def test_the_stand_in_counts_and_misbehaves_on_command() -> None:
    with LLMHostStandIn("solo") as solo:
        assert httpx.post(f"{solo.url}{CHAT}", json=PAYLOAD).status_code == 200
        solo.fail(500)
        assert httpx.post(f"{solo.url}{CHAT}", json=PAYLOAD).status_code == 500
        solo.die()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{solo.url}/health")
        solo.revive()
        assert httpx.get(f"{solo.url}/health").status_code == 200
        assert solo.served == 2


async def test_hosts_found_through_discovery(standins: LLMHostStandIns) -> None:
    registry = StaticBackend({"llm-service": [s.url for s in standins][:2]})
    discovery = Discovery([registry])
    async with DistributedLLMClient.from_discovery("llm-service", discovery=discovery) as client:
        for _ in range(4):
            response = await client.post("/v1/chat/completions", json={"messages": []})
            assert response.status_code == 200
        assert len(client.hosts) == 2
        registry.set("llm-service", [standins[2].url], "http")
        discovery.invalidate()
        await client.refresh_hosts()
        assert [host.url for host in client.hosts] == [standins[2].url]
        await client.post("/v1/chat/completions", json={"messages": []})
    assert standins[0].served + standins[1].served == 4
    assert standins[2].served == 1
