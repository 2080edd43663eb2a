"""DistributedLLMClient on a MockTransport: failover, hedging, breakers, discovery, bad input.

No sockets: each host's answers come from a function of the call.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import pytest

from servicegrid.errors import (
    BulkheadFull,
    ClientStateError,
    ConnectError,
    DeadlineExceeded,
    DiscoveryError,
    InvalidResponse,
    ServiceUnavailable,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.llm import DistributedLLMClient, LLMHost, LoadBalancingStrategy
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.mock import MockTransport

Answer = Callable[[Call], Reply | Awaitable[Reply]]


def completion(call: Call) -> Reply:
    host = urlsplit(call.url).hostname
    body = {
        "model": "m",
        "choices": [{"message": {"content": f"hi from {host}"}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 3},
    }
    return Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())


def status(code: int) -> Answer:
    return lambda call: Reply(code, {}, b'{"error": "told to"}')


def refuse(call: Call) -> Reply:
    raise ConnectError(f"{call.url}: connection refused")


def hang(forever: asyncio.Event, called: asyncio.Event | None = None) -> Answer:
    async def answer(call: Call) -> Reply:
        if called is not None:
            called.set()
        await forever.wait()
        return completion(call)

    return answer


def transport(**answers: Answer) -> MockTransport:
    """Host ``hostN.test`` answers with ``answers["hostN"]``, else a completion."""

    def handler(call: Call) -> Reply | Awaitable[Reply]:
        name = (urlsplit(call.url).hostname or "").split(".")[0]
        return answers.get(name, completion)(call)

    return MockTransport(handler)


def llm_hosts(count: int = 3, **options: object) -> list[LLMHost]:
    return [
        LLMHost(f"host{i}", f"http://host{i}.test", **options)  # type: ignore[arg-type]
        for i in range(1, count + 1)
    ]


def client_for(mock: MockTransport, count: int = 3, **options: object) -> DistributedLLMClient:
    return DistributedLLMClient(llm_hosts(count), transport=mock, **options)  # type: ignore[arg-type]


def hosts_called(mock: MockTransport) -> list[str]:
    return [(urlsplit(c.url).hostname or "").split(".")[0] for c in mock.calls]


# ---- failover ----------------------------------------------------------------------------


async def test_a_retryable_status_fails_over_to_the_next_host() -> None:
    mock = transport(host1=status(503))
    client = client_for(mock)
    response = await client.post("/v1/chat/completions", json={"messages": []})
    assert response.json()["choices"][0]["message"]["content"] == "hi from host2.test"
    assert hosts_called(mock) == ["host1", "host2"]
    metrics = client.get_metrics()
    assert metrics["failovers"] == 1
    assert metrics["hosts"]["host1"]["errors"] == 1
    assert "HTTP 503" in metrics["hosts"]["host1"]["last_error"]


@pytest.mark.parametrize("code", [429, 500, 502, 504])
async def test_every_retryable_status_fails_over(code: int) -> None:
    mock = transport(host1=status(code))
    response = await client_for(mock).get("/v1/models")
    assert response.status_code == 200
    assert hosts_called(mock) == ["host1", "host2"]


async def test_a_client_error_comes_back_at_once_without_failover() -> None:
    mock = transport(host1=status(400))
    client = client_for(mock)
    response = await client.post("/v1/chat/completions", json={})
    assert response.status_code == 400
    assert hosts_called(mock) == ["host1"]
    host1 = client.host_metrics("host1")
    assert (host1.client_errors, host1.errors, host1.circuit_breaker) == (1, 0, "closed")


async def test_when_every_host_fails_the_last_error_says_what_each_attempt_met() -> None:
    mock = transport(host1=refuse, host2=status(500), host3=status(503))
    client = client_for(mock)
    with pytest.raises(ServiceUnavailableError) as caught:
        await client.get("/v1/models")
    assert caught.value.service == "host3"
    attempts = caught.value.details["attempts"]
    assert [a["host"] for a in attempts] == ["host1", "host2", "host3"]
    assert attempts[0]["error"].startswith("ConnectError")
    assert sorted(hosts_called(mock)) == ["host1", "host2", "host3"]  # each host once
    assert client.get_metrics()["total_errors"] == 1


async def test_max_attempts_bounds_the_failover() -> None:
    mock = transport(host1=status(503), host2=status(503))
    with pytest.raises(ServiceUnavailableError):
        await client_for(mock, max_attempts=2).get("/v1/models")
    assert hosts_called(mock) == ["host1", "host2"]


async def test_with_every_breaker_open_the_call_is_refused_without_a_request() -> None:
    mock = transport(host1=refuse, host2=refuse, host3=refuse)
    client = client_for(mock, circuit_breaker=CircuitBreakerConfig(failure_threshold=1))
    with pytest.raises(ConnectError):
        await client.get("/v1/models")
    with pytest.raises(ServiceUnavailable, match="circuit open") as caught:
        await client.get("/v1/models")
    assert len(mock.calls) == 3
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60


async def test_an_open_breaker_lets_a_trial_through_after_its_recovery_timeout() -> None:
    answers: dict[str, Answer] = {"host1": refuse}
    mock = MockTransport(lambda call: answers.get("host1", completion)(call))
    config = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=0.0)
    client = DistributedLLMClient(llm_hosts(1), transport=mock, circuit_breaker=config)
    with pytest.raises(ConnectError):
        await client.get("/v1/models")
    answers.clear()  # the host is back
    assert (await client.get("/v1/models")).status_code == 200
    assert client.host_metrics("host1").circuit_breaker == "closed"


async def test_no_enabled_host_is_a_typed_error() -> None:
    client = client_for(transport())
    for name in ("host1", "host2", "host3"):
        client.disable_host(name)
    with pytest.raises(ServiceUnavailableError, match="no enabled LLM host") as caught:
        await client.get("/v1/models")
    assert type(caught.value) is ServiceUnavailableError


async def test_hosts_at_max_concurrent_refuse_with_bulkhead_full() -> None:
    forever, called = asyncio.Event(), asyncio.Event()
    mock = transport(host1=hang(forever, called))
    client = DistributedLLMClient(llm_hosts(1, max_concurrent=1), transport=mock)
    first = asyncio.create_task(client.get("/v1/models"))
    await called.wait()
    with pytest.raises(BulkheadFull, match="max_concurrent"):
        await client.get("/v1/models")
    forever.set()
    assert (await first).status_code == 200


async def test_the_total_timeout_ends_failover() -> None:
    mock = transport(host1=hang(asyncio.Event()))
    client = client_for(mock)
    with pytest.raises(DeadlineExceeded, match="no answer within"):
        await client.get("/v1/models", timeout=0.05)
    assert hosts_called(mock) == ["host1"]  # no time was left for host2
    assert client.host_metrics("host1").errors == 1


# ---- hedging -----------------------------------------------------------------------------


async def test_a_hedged_call_takes_the_answer_that_comes_first() -> None:
    mock = transport(host1=hang(asyncio.Event()))
    client = client_for(mock, hedge_after=0.01)
    response = await client.get("/v1/models")
    assert str(response.request.url).startswith("http://host2.test")
    assert hosts_called(mock) == ["host1", "host2"]
    host1 = client.host_metrics("host1")
    assert (host1.in_flight, host1.errors, host1.circuit_breaker) == (0, 0, "closed")
    assert client.get_metrics()["hedged_requests"] == 1


async def test_a_post_is_hedged_only_when_marked_idempotent() -> None:
    async def late(call: Call) -> Reply:
        await asyncio.sleep(0.05)  # the host's own pace
        return completion(call)

    mock = transport(host1=late, host2=late)
    client = client_for(mock, hedge_after=0.001)
    response = await client.post("/v1/chat/completions", json={})
    assert response.json()["choices"][0]["message"]["content"] == "hi from host1.test"
    assert hosts_called(mock) == ["host1"]
    hedged = await client.post("/v1/chat/completions", json={}, idempotent=True)
    assert hedged.json()["choices"][0]["message"]["content"] == "hi from host3.test"
    assert hosts_called(mock) == ["host1", "host2", "host3"]


async def test_a_hedged_call_still_fails_over_when_its_host_fails_first() -> None:
    mock = transport(host1=status(503))
    client = client_for(mock, hedge_after=10.0)
    assert (await client.get("/v1/models")).status_code == 200
    assert hosts_called(mock) == ["host1", "host2"]
    assert client.get_metrics()["hedged_requests"] == 0


# ---- strategies through the client -------------------------------------------------------


async def test_weighted_random_through_the_client_follows_the_weights() -> None:
    mock = transport()
    hosts = [
        LLMHost("host1", "http://host1.test", weight=2.0),
        LLMHost("host2", "http://host2.test"),
    ]
    client = DistributedLLMClient(
        hosts, LoadBalancingStrategy.WEIGHTED_RANDOM, transport=mock, rng=random.Random(4)
    )
    for _ in range(600):
        await client.get("/v1/models")
    counts = Counter(hosts_called(mock))
    assert 1.6 < counts["host1"] / counts["host2"] < 2.5


async def test_disable_and_enable_a_host() -> None:
    mock = transport()
    client = client_for(mock)
    client.disable_host("host2")
    for _ in range(4):
        await client.get("/v1/models")
    assert "host2" not in hosts_called(mock)
    assert client.get_metrics()["hosts"]["host2"]["enabled"] is False
    client.enable_host("host2")
    for _ in range(3):
        await client.get("/v1/models")
    assert "host2" in hosts_called(mock)


# ---- chat --------------------------------------------------------------------------------


async def test_chat_parses_the_answer_and_names_the_host() -> None:
    mock = transport()
    answer = await client_for(mock).chat("Hi", model="m", temperature=0.1)
    assert (answer.content, answer.finish_reason, answer.host) == (
        "hi from host1.test",
        "stop",
        "host1",
    )
    assert answer.usage == {"total_tokens": 3}
    sent = json.loads(mock.calls[0].body)
    assert sent == {
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.1,
        "model": "m",
    }


async def test_chat_raises_typed_errors_for_refusals_and_non_answers() -> None:
    with pytest.raises(ValidationError, match="HTTP 400"):
        await client_for(transport(host1=status(400))).chat("Hi")
    with pytest.raises(InvalidResponse, match="no choices"):
        await client_for(transport(host1=lambda call: Reply(200, {}, b"{}"))).chat("Hi")


# ---- discovery ---------------------------------------------------------------------------


def discovery(*answers: Sequence[str]) -> Callable[[], Awaitable[Sequence[str]]]:
    """Answer with each of ``answers`` in turn, then with the last one."""
    queue = list(answers)

    async def discover() -> Sequence[str]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return discover


async def test_discovered_hosts_are_used_and_keep_their_state_across_refreshes() -> None:
    mock = transport()
    discover = discovery(
        ["http://host1.test:8000/v1", "http://host2.test:8000", "http://host1.test:8000"],
        ["http://host2.test:8000", "not a url", "http://host3.test:8000"],
    )
    client = DistributedLLMClient(discover=discover, transport=mock, refresh_interval=3600)
    with pytest.raises(ClientStateError, match="start"):
        await client.get("/v1/models")
    async with client:
        assert [h.name for h in client.hosts] == ["host1.test:8000", "host2.test:8000"]
        for _ in range(4):
            await client.get("/v1/models")
        await client.refresh_hosts()
        assert [h.name for h in client.hosts] == ["host2.test:8000", "host3.test:8000"]
        assert client.host_metrics("host2.test:8000").requests == 2


async def test_hosts_are_refreshed_in_the_background() -> None:
    calls = 0
    refreshed = asyncio.Event()

    async def discover() -> Sequence[str]:
        nonlocal calls
        calls += 1
        if calls > 2:  # the second answer is in use by now
            refreshed.set()
        return ["http://host1.test"] if calls == 1 else ["http://host2.test"]

    async with DistributedLLMClient(
        discover=discover, transport=transport(), refresh_interval=0.001
    ) as client:
        assert [h.name for h in client.hosts] == ["host1.test"]
        await asyncio.wait_for(refreshed.wait(), 10)
        assert [h.name for h in client.hosts] == ["host2.test"]


async def test_a_failing_discovery_is_a_discovery_error_at_start() -> None:
    async def discover() -> Sequence[str]:
        raise OSError("registry unreachable")

    client = DistributedLLMClient(discover=discover, transport=transport())
    with pytest.raises(DiscoveryError, match="registry unreachable"):
        await client.start()


async def test_discovery_that_finds_nothing_leaves_no_host_to_call() -> None:
    async with DistributedLLMClient(discover=discovery([]), transport=transport()) as client:
        with pytest.raises(ServiceUnavailableError, match="no LLM host is known"):
            await client.get("/v1/models")


# ---- bad input and lifecycle -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://llm1.example.com", "https://llm1.example.com"),
        ("https://llm1.example.com/v1", "https://llm1.example.com"),
        ("http://127.0.0.1:1234/v1/", "http://127.0.0.1:1234"),
        ("https://gw.example.com/llm/v1", "https://gw.example.com/llm"),
    ],
)
def test_a_host_url_is_its_origin_with_or_without_v1(url: str, origin: str) -> None:
    assert LLMHost("h", url).url == origin


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "url": "http://h"}, "name"),
        ({"name": "h", "url": "llm1.example.com"}, "http:// or https://"),
        ({"name": "h", "url": "ftp://h"}, "http:// or https://"),
        ({"name": "h", "url": "http://"}, "no host"),
        ({"name": "h", "url": "http://h:99999"}, "bad port"),
        ({"name": "h", "url": "http://h/v1?x=1"}, "query"),
        ({"name": "h", "url": "http://h", "weight": 0}, "weight"),
        ({"name": "h", "url": "http://h", "weight": -1.0}, "weight"),
        ({"name": "h", "url": "http://h", "max_concurrent": 0}, "max_concurrent"),
    ],
)
def test_a_bad_host_is_a_clear_value_error(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLMHost(**fields)  # type: ignore[arg-type]


def test_bad_client_arguments_are_clear_value_errors() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        DistributedLLMClient(hosts=[])
    with pytest.raises(ValueError, match=r"unique.*'host1'"):
        DistributedLLMClient([LLMHost("host1", "http://a"), LLMHost("host1", "http://b")])
    with pytest.raises(ValueError, match="exactly one"):
        DistributedLLMClient()
    with pytest.raises(ValueError, match="exactly one"):
        DistributedLLMClient(llm_hosts(1), discover=discovery([]))
    with pytest.raises(ValueError, match="LLMHost"):
        DistributedLLMClient(["http://a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="fastest"):
        DistributedLLMClient(llm_hosts(1), strategy="fastest")
    with pytest.raises(ValueError, match="hedge_after"):
        DistributedLLMClient(llm_hosts(1), hedge_after=-1)


def test_an_unknown_host_name_is_a_key_error_naming_the_known_ones() -> None:
    client = client_for(transport())
    with pytest.raises(KeyError, match=r"no LLM host named 'host9'.*host1, host2, host3"):
        client.enable_host("host9")
    with pytest.raises(KeyError):
        client.disable_host("host9")


async def test_a_stopped_client_refuses_calls_and_restarts() -> None:
    client = client_for(transport())
    async with client:
        assert (await client.get("/v1/models")).status_code == 200
    with pytest.raises(ClientStateError, match="stopped"):
        await client.get("/v1/models")
    with pytest.raises(ClientStateError):
        await client.start()


async def test_a_path_must_not_be_a_url() -> None:
    with pytest.raises(ValueError, match="not a URL"):
        await client_for(transport()).get("http://elsewhere/v1/models")


def test_metrics_have_totals_and_every_host() -> None:
    metrics = client_for(transport()).get_metrics()
    assert metrics["strategy"] == "round_robin"
    assert metrics["hosts_total"] == metrics["hosts_enabled"] == 3
    assert set(metrics["hosts"]["host1"]) >= {
        "requests",
        "errors",
        "latency_avg_ms",
        "latency_ewma_ms",
        "circuit_breaker",
        "in_flight",
        "last_error",
    }
