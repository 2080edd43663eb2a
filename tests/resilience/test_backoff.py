"""Backoff policies: the documented formula, clamped, for any attempt number."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicegrid.resilience.backoff import (
    ConstantBackoff,
    ExponentialBackoff,
    Jitter,
    LinearBackoff,
)

attempts = st.integers(min_value=1, max_value=10_000)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def exponential(draw: st.DrawFn, jitter: Jitter) -> ExponentialBackoff:
    # sub-nanosecond initial delays are meaningless; 0 is the "no backoff" edge
    initial = draw(st.one_of(st.just(0.0), st.floats(min_value=1e-9, max_value=100.0)))
    maximum = draw(st.floats(min_value=initial, max_value=1_000.0))
    factor = draw(st.floats(min_value=1.0, max_value=10.0))
    return ExponentialBackoff(initial=initial, max=maximum, factor=factor, jitter=jitter)


def _base(policy: ExponentialBackoff, attempt: int) -> float:
    """min(max, initial * factor**(attempt-1)) computed without overflowing."""
    if policy.initial == 0:
        return 0.0
    log_base = math.log(policy.initial) + (attempt - 1) * math.log(policy.factor)
    if log_base >= math.log(policy.max) + 1e-9:
        return policy.max
    return min(policy.max, policy.initial * policy.factor ** (attempt - 1))


@given(exponential(Jitter.FULL), attempts, seeds)
def test_full_jitter_stays_within_zero_and_max(
    policy: ExponentialBackoff, attempt: int, seed: int
) -> None:
    delay = policy.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= policy.max
    assert delay <= _base(policy, attempt) + 1e-12


@given(exponential(Jitter.EQUAL), attempts, seeds)
def test_equal_jitter_stays_within_half_base_and_base(
    policy: ExponentialBackoff, attempt: int, seed: int
) -> None:
    delay = policy.delay(attempt, random.Random(seed))
    base = _base(policy, attempt)
    assert base / 2 - 1e-12 <= delay <= base + 1e-12
    assert delay <= policy.max


@given(exponential(Jitter.NONE), attempts, seeds)
def test_no_jitter_is_exactly_the_formula(
    policy: ExponentialBackoff, attempt: int, seed: int
) -> None:
    delay = policy.delay(attempt, random.Random(seed))
    assert delay == pytest.approx(_base(policy, attempt), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("attempt", [1, 2, 64, 1_024, 1_025, 5_000, 10_000, 10**9])
def test_huge_attempt_numbers_clamp_to_max_without_overflow(attempt: int) -> None:
    policy = ExponentialBackoff(initial=0.5, max=30.0, factor=2.0, jitter=Jitter.NONE)
    expected = min(30.0, 0.5 * 2 ** (attempt - 1)) if attempt < 100 else 30.0
    assert policy.delay(attempt, random.Random(0)) == expected


@pytest.mark.parametrize("jitter", [Jitter.NONE, Jitter.FULL, Jitter.EQUAL])
def test_zero_initial_means_zero_delay_for_any_attempt(jitter: Jitter) -> None:
    policy = ExponentialBackoff(initial=0.0, max=1.0, factor=2.0, jitter=jitter)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in (1, 2, 1_024)] == [0.0, 0.0, 0.0]
    assert policy.delay(1_025, rng) == 0.0


def test_exponential_doubles_from_initial() -> None:
    policy = ExponentialBackoff(initial=0.1, max=5.0, jitter=Jitter.NONE)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(1, 9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )


def test_jitter_uses_the_injected_rng() -> None:
    policy = ExponentialBackoff(initial=1.0, max=10.0)
    first = [policy.delay(n, random.Random(7)) for n in range(1, 6)]
    again = [policy.delay(n, random.Random(7)) for n in range(1, 6)]
    assert first == again


def test_variants_come_from_dataclasses_replace() -> None:
    policy = ExponentialBackoff()
    shorter = dataclasses.replace(policy, max=2.0)
    assert shorter.max == 2.0
    assert policy.max == 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max = 1.0  # type: ignore[misc]


# --- linear and constant -----------------------------------------------------------------------


@given(
    st.floats(min_value=0.0, max_value=100.0),
    st.floats(min_value=0.0, max_value=1_000.0),
    attempts,
    seeds,
)
def test_linear_is_initial_times_attempt_capped(
    initial: float, maximum: float, attempt: int, seed: int
) -> None:
    policy = LinearBackoff(initial=initial, max=maximum)
    assert policy.delay(attempt, random.Random(seed)) == min(initial * attempt, maximum)


def test_linear_steps() -> None:
    policy = LinearBackoff(initial=1.0, max=3.5)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(1, 6)] == [1.0, 2.0, 3.0, 3.5, 3.5]


@given(st.floats(min_value=0.0, max_value=100.0), attempts, seeds)
def test_linear_full_jitter_within_zero_and_step(initial: float, attempt: int, seed: int) -> None:
    policy = LinearBackoff(initial=initial, max=50.0, jitter=Jitter.FULL)
    assert 0.0 <= policy.delay(attempt, random.Random(seed)) <= min(initial * attempt, 50.0)


@given(st.floats(min_value=0.0, max_value=100.0), attempts, seeds)
def test_constant_is_constant(seconds: float, attempt: int, seed: int) -> None:
    assert ConstantBackoff(seconds).delay(attempt, random.Random(seed)) == seconds


@given(st.floats(min_value=0.0, max_value=100.0), attempts, seeds)
def test_constant_equal_jitter_within_half_and_full(
    seconds: float, attempt: int, seed: int
) -> None:
    delay = ConstantBackoff(seconds, jitter=Jitter.EQUAL).delay(attempt, random.Random(seed))
    assert seconds / 2 <= delay <= seconds


# --- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial": -0.1}, "initial"),
        ({"initial": math.nan}, "initial"),
        ({"initial": math.inf, "max": math.inf}, "initial"),
        ({"max": -1.0, "initial": 0.0}, "max"),
        ({"max": math.nan}, "max"),
        ({"factor": 0.5}, "factor"),
        ({"factor": math.nan}, "factor"),
        ({"initial": 2.0, "max": 1.0}, "max"),
    ],
)
def test_exponential_rejects_bad_arguments(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ExponentialBackoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial": -1.0}, "initial"),
        ({"initial": math.inf}, "initial"),
        ({"max": -1.0}, "max"),
        ({"max": math.nan}, "max"),
    ],
)
def test_linear_rejects_bad_arguments(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LinearBackoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_constant_rejects_bad_arguments(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        ConstantBackoff(seconds)
