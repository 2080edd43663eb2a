"""The pickers and the latency estimate, with a seeded rng and a fake clock: no sockets."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from servicegrid.errors import ConnectError, ResourceExhausted, ValidationError
from servicegrid.llm import LatencyEwma, LLMHost, LoadBalancingStrategy
from servicegrid.llm.hosts import HostState
from servicegrid.llm.strategies import (
    LeastLoaded,
    Picker,
    RoundRobin,
    pick_power_of_two,
    pick_random,
    pick_weighted_random,
    picker_for,
)
from servicegrid.resilience.breaker import CircuitBreaker
from servicegrid.testing import FakeClock


@dataclass(frozen=True)
class Host:
    position: int
    weight: float = 1.0
    in_flight: int = 0
    latency: float = 0.0


def hosts(count: int) -> list[Host]:
    return [Host(i) for i in range(count)]


def picks(picker: Picker, candidates: list[Host], times: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [picker(candidates, rng).position for _ in range(times)]


def test_round_robin_takes_each_host_in_turn() -> None:
    assert picks(RoundRobin(), hosts(3), 7) == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_skips_an_ineligible_host_and_keeps_the_order_of_the_rest() -> None:
    every, rng = hosts(3), random.Random(1)
    turns = RoundRobin()
    assert turns(every, rng).position == 0
    assert turns([every[0], every[2]], rng).position == 2  # host 1 is out: its turn passes
    assert turns(every, rng).position == 0
    assert turns([every[0], every[2]], rng).position == 2


def test_least_loaded_takes_the_fewest_in_flight_and_breaks_ties_in_turn() -> None:
    candidates = [Host(0, in_flight=3), Host(1, in_flight=1), Host(2, in_flight=1)]
    assert picks(LeastLoaded(), candidates, 4) == [1, 2, 1, 2]


def test_random_is_uniform_and_repeatable_with_a_seed() -> None:
    drawn = picks(pick_random, hosts(3), 3000)
    assert drawn == picks(pick_random, hosts(3), 3000)
    assert all(900 < n < 1100 for n in Counter(drawn).values())


def test_weighted_random_follows_the_weights() -> None:
    candidates = [Host(0, weight=2.0), Host(1, weight=1.0)]
    counts = Counter(picks(pick_weighted_random, candidates, 3000))
    assert 1900 < counts[0] < 2100
    assert counts[0] + counts[1] == 3000


def test_power_of_two_never_takes_the_worst_of_three() -> None:
    candidates = [Host(0, latency=0.010), Host(1, latency=0.200), Host(2, latency=0.020)]
    counts = Counter(picks(pick_power_of_two, candidates, 600))
    assert counts[1] == 0
    assert counts[0] > counts[2] > 0  # the fast one wins both pairs it is in


def test_power_of_two_weighs_latency_by_load() -> None:
    busy_fast = Host(0, latency=0.010, in_flight=9)  # 0.010 * 10
    idle_slow = Host(1, latency=0.050)  # 0.050 * 1
    assert set(picks(pick_power_of_two, [busy_fast, idle_slow], 50)) == {1}


def test_power_of_two_tells_unmeasured_hosts_apart_by_load() -> None:
    assert set(picks(pick_power_of_two, [Host(0, in_flight=5), Host(1, in_flight=0)], 50)) == {1}


def test_power_of_two_with_one_candidate_takes_it() -> None:
    assert picks(pick_power_of_two, [Host(4)], 3) == [4, 4, 4]


@pytest.mark.parametrize("strategy", list(LoadBalancingStrategy))
def test_every_strategy_has_a_picker_that_returns_a_candidate(
    strategy: LoadBalancingStrategy,
) -> None:
    candidates = hosts(4)
    for position in picks(picker_for(strategy), candidates, 20):
        assert 0 <= position < 4


def test_strategies_are_named_as_in_seed_004() -> None:
    assert LoadBalancingStrategy("weighted_random") is LoadBalancingStrategy.WEIGHTED_RANDOM
    assert {s.name for s in LoadBalancingStrategy} >= {
        "ROUND_ROBIN",
        "RANDOM",
        "LEAST_LOADED",
        "WEIGHTED_RANDOM",
    }


# ---- the latency estimate ----------------------------------------------------------------


def test_latency_ewma_takes_the_first_sample_then_blends_and_fades() -> None:
    ewma = LatencyEwma(alpha=0.5, fade=10.0)
    first = ewma.observe(None, 0.0, 0.100)
    assert first == 0.100
    assert ewma.observe(first, 0.0, 0.300) == pytest.approx(0.200)
    assert ewma.faded(0.200, 10.0) == pytest.approx(0.200 / 2.718281828, rel=1e-6)
    assert ewma.faded(None, 5.0) == 0.0


def test_a_failure_counts_as_at_least_the_penalty_and_five_times_the_estimate() -> None:
    ewma = LatencyEwma(failure_penalty=1.0, failure_factor=5.0)
    assert ewma.penalty(None, 0.0) == 1.0
    assert ewma.penalty(0.5, 0.0) == pytest.approx(2.5)


@pytest.mark.parametrize(
    "bad", [{"alpha": 0}, {"alpha": 1.5}, {"fade": 0}, {"failure_factor": 0.5}]
)
def test_latency_ewma_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        LatencyEwma(**bad)


def state(clock: FakeClock) -> HostState:
    return HostState(
        LLMHost("h", "http://h"),
        breaker=CircuitBreaker(failure_threshold=100, clock=clock),
        headers={},
        latency=LatencyEwma(),
        clock=clock,
    )


def test_a_host_that_fails_fast_never_looks_fast() -> None:
    clock = FakeClock()
    failing, healthy = state(clock), state(clock)
    for _ in range(10):
        attempt = failing.admit()
        clock.advance(0.001)  # refused at once
        attempt.failed(ConnectError("refused"))
        attempt = healthy.admit()
        clock.advance(0.050)
        attempt.succeeded()
    assert failing.latency > 0.5 > 0.05 == pytest.approx(healthy.latency, rel=0.1)
    assert failing.errors == 10
    assert failing.in_flight == 0


def test_a_shed_call_looks_slow_but_leaves_the_breaker_alone() -> None:
    clock = FakeClock()
    host = state(clock)
    host.admit().failed(ResourceExhausted("busy"))
    assert host.latency >= 0.3
    assert host.breaker.failure_count == 0


def test_the_callers_own_mistake_does_not_make_the_host_look_slow() -> None:
    clock = FakeClock()
    host = state(clock)
    host.admit().failed(ValidationError("bad header"))
    assert host.latency == 0.0
    assert host.errors == 1


def test_an_abandoned_attempt_counts_its_time_so_far_and_nothing_else() -> None:
    clock = FakeClock()
    host = state(clock)
    attempt = host.admit()
    clock.advance(0.2)
    attempt.abandoned()
    attempt.succeeded()  # a second outcome is ignored
    assert host.latency == pytest.approx(0.2)
    assert (host.successes, host.errors, host.in_flight) == (0, 0, 0)
    quick = host.admit()
    clock.advance(0.01)
    quick.abandoned()  # a lower bound under the estimate says nothing new
    assert host.latency == pytest.approx(0.2, rel=0.01)


def test_an_estimate_fades_while_a_host_is_not_heard_from() -> None:
    clock = FakeClock()
    host = state(clock)
    host.admit().failed(ConnectError("refused"))
    before = host.latency
    clock.advance(30.0)
    assert host.latency < before / 10
