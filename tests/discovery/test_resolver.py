"""Discovery's rule: backends in order, a TTL cache, stale answers only when every backend fails."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from servicegrid.discovery import Discovery, Instance, ServiceName
from servicegrid.discovery.base import WireProtocol
from servicegrid.errors import DiscoveryError, UnknownServiceError, ValidationError
from servicegrid.testing import FakeClock


@dataclass
class ScriptedBackend:
    """A backend of our own Backend protocol whose answers the test sets (not a network fake)."""

    name: str
    instances: dict[str, list[Instance]] = field(default_factory=dict)
    failing: bool = False
    hang: bool = False
    asked: int = 0

    async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
        self.asked += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.failing:
            raise DiscoveryError(f"{self.name} is down", service=str(service))
        return list(self.instances.get(service.registered_as(protocol), []))

    async def aclose(self) -> None:
        return None


USERS = [Instance("10.0.0.1", 8001), Instance("10.0.0.2", 8001)]


def discovery(*backends: ScriptedBackend, clock: FakeClock, **options: float) -> Discovery:
    return Discovery(backends, clock=clock, **options)


async def test_the_first_backend_that_knows_the_service_answers() -> None:
    clock = FakeClock()
    etcd = ScriptedBackend("etcd", {"user-service": USERS})
    env = ScriptedBackend("env", {"user-service": [Instance("localhost", 8001)]})
    found = discovery(etcd, env, clock=clock)
    answer = await found.resolve("USER_SERVICE")
    assert answer.backend == "etcd"
    assert answer.locators == ["http://10.0.0.1:8001", "http://10.0.0.2:8001"]
    assert found.metadata(answer) == {
        "service": "user-service",
        "protocol": "http",
        "backend": "etcd",
        "age_seconds": 0.0,
        "instances": 2,
        "stale": False,
    }
    assert env.asked == 0


async def test_a_backend_that_knows_nothing_passes_to_the_next() -> None:
    clock = FakeClock()
    consul = ScriptedBackend("consul")
    env = ScriptedBackend("env", {"user-service": [Instance("localhost", 8001)]})
    answer = await discovery(consul, env, clock=clock).resolve("user-service")
    assert (answer.backend, consul.asked) == ("env", 1)


async def test_answers_are_cached_for_the_ttl_then_asked_again() -> None:
    clock = FakeClock()
    etcd = ScriptedBackend("etcd", {"user-service": USERS})
    found = discovery(etcd, clock=clock, ttl=30.0)
    await found.resolve("USER_SERVICE")
    clock.advance(29.0)
    answer = await found.resolve("user-service")
    assert etcd.asked == 1
    assert found.metadata(answer)["age_seconds"] == 29.0
    clock.advance(1.0)
    await found.resolve("USER_SERVICE")
    assert etcd.asked == 2


async def test_with_etcd_down_the_cache_serves_until_the_ttl_then_the_next_backend() -> None:
    clock = FakeClock()
    etcd = ScriptedBackend("etcd", {"user-service": USERS})
    env = ScriptedBackend("env", {"user-service": [Instance("localhost", 8001)]})
    found = discovery(etcd, env, clock=clock, ttl=30.0)
    assert (await found.resolve("USER_SERVICE")).backend == "etcd"
    etcd.failing = True
    clock.advance(10.0)
    assert (await found.resolve("USER_SERVICE")).backend == "etcd"  # cached
    clock.advance(25.0)
    answer = await found.resolve("USER_SERVICE")
    assert (answer.backend, answer.stale) == ("env", False)


async def test_when_every_backend_fails_a_recent_answer_is_served_stale() -> None:
    clock = FakeClock()
    etcd = ScriptedBackend("etcd", {"user-service": USERS})
    consul = ScriptedBackend("consul")
    found = discovery(etcd, consul, clock=clock, ttl=30.0, max_stale=300.0)
    await found.resolve("USER_SERVICE")
    etcd.failing = consul.failing = True
    clock.advance(200.0)
    answer = await found.resolve("USER_SERVICE")
    assert answer.stale
    assert answer.backend == "etcd"
    assert found.metadata(answer)["stale"] is True
    assert found.stale_answers == 1
    clock.advance(101.0)  # now older than max_stale
    with pytest.raises(DiscoveryError, match="etcd: etcd is down; consul: consul is down"):
        await found.resolve("USER_SERVICE")


async def test_a_name_never_answered_fails_with_a_typed_error_when_backends_fail() -> None:
    clock = FakeClock()
    found = discovery(ScriptedBackend("etcd", failing=True), clock=clock)
    with pytest.raises(DiscoveryError) as caught:
        await found.resolve("question-service")
    assert not isinstance(caught.value, UnknownServiceError)
    assert caught.value.retryable


async def test_an_unknown_service_is_an_unknown_service_error() -> None:
    found = discovery(ScriptedBackend("etcd"), ScriptedBackend("env"), clock=FakeClock())
    with pytest.raises(UnknownServiceError, match="no-such-service") as caught:
        await found.resolve("no-such-service")
    assert "NO_SUCH_SERVICE_URL" in caught.value.message
    assert not caught.value.retryable


async def test_a_hanging_backend_is_bounded_by_the_timeout() -> None:
    hanging = ScriptedBackend("consul", hang=True)
    env = ScriptedBackend("env", {"user-service": USERS})
    found = Discovery([hanging, env], timeout=0.05)
    answer = await asyncio.wait_for(found.resolve("USER_SERVICE"), timeout=5)
    assert answer.backend == "env"
    only_hanging = Discovery([hanging], timeout=0.05)
    with pytest.raises(DiscoveryError, match=r"no answer within 0\.05 s"):
        await asyncio.wait_for(only_hanging.resolve("USER_SERVICE"), timeout=5)


async def test_concurrent_lookups_of_one_name_ask_the_backends_once() -> None:
    etcd = ScriptedBackend("etcd", {"user-service": USERS})
    found = Discovery([etcd])
    answers = await asyncio.gather(*(found.resolve("USER_SERVICE") for _ in range(20)))
    assert etcd.asked == 1
    assert {answer.backend for answer in answers} == {"etcd"}


async def test_grpc_faces_and_overrides_use_their_own_names() -> None:
    etcd = ScriptedBackend(
        "etcd",
        {
            "user-service-grpc": [Instance("10.0.0.1", 50061, "grpc")],
            "people": [Instance("10.0.0.9", 8001)],
        },
    )
    found = Discovery([etcd], overrides={"USER_SERVICE": "people"})
    assert (await found.resolve("user-service")).locators == ["http://10.0.0.9:8001"]
    plain = Discovery([etcd])
    assert (await plain.resolve("USER_SERVICE", "grpc")).locators == ["10.0.0.1:50061"]


@pytest.mark.parametrize("bad", ["", "user service", "a/b", "x" * 300, 42, None, "-lead"])
async def test_names_that_cannot_name_a_service_are_validation_errors(bad: object) -> None:
    found = Discovery([ScriptedBackend("env")])
    with pytest.raises(ValidationError):
        await found.resolve(bad)  # type: ignore[arg-type]


async def test_a_bad_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        await Discovery([ScriptedBackend("env")]).resolve("USER_SERVICE", "smtp")  # type: ignore[arg-type]


async def test_a_backend_bug_does_not_end_the_lookup() -> None:
    class Broken(ScriptedBackend):
        async def lookup(self, service: ServiceName, protocol: WireProtocol) -> list[Instance]:
            raise KeyError("Service")

    env = ScriptedBackend("env", {"user-service": USERS})
    answer = await Discovery([Broken("consul"), env]).resolve("USER_SERVICE")
    assert answer.backend == "env"


def test_names_map_between_env_prefixes_and_discovery_names() -> None:
    assert ServiceName.parse("USER_SERVICE").discovery_name == "user-service"
    assert ServiceName.parse("user-service").env_prefix == "USER_SERVICE"
    assert ServiceName.parse("users").discovery_name == "user-service"
    assert ServiceName.parse("BILLING_SERVICE").discovery_name == "billing-service"
    assert ServiceName.parse("billing-service").env_prefix == "BILLING_SERVICE"
    assert ServiceName.parse("USER_SERVICE").registered_as("grpc") == "user-service-grpc"
    assert ServiceName.parse("EMBEDDING_SERVICE").registered_as("grpc") == "embedding-service"
    assert ServiceName.parse("DOCLING_VLM_SERVICE").discovery_name == "docling-vlm-service"
