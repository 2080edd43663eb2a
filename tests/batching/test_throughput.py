"""The throughput figures admission plans with: by length class, full batches first."""

from __future__ import annotations

import pytest

from servicegrid.batching import ThroughputEstimate
from servicegrid.batching.throughput import SMOOTHING, length_class


@pytest.mark.parametrize(
    ("tokens", "expected"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (255, 8), (256, 9)]
)
def test_length_classes_are_powers_of_two(tokens: int, expected: int) -> None:
    assert length_class(tokens) == expected


def estimate(**options: int) -> ThroughputEstimate:
    return ThroughputEstimate(**{"max_items": 8, "max_tokens": 1000, **options})


def test_nothing_is_known_before_the_first_batch() -> None:
    figures = estimate()
    assert not figures
    assert figures.seconds_per_token(10) is None
    assert figures.seconds({4: 100}) == 0.0
    assert figures.tokens_per_second(10) == 0.0


def test_a_full_batch_gives_seconds_per_token_of_the_whole_engine() -> None:
    figures = estimate(forward_workers=2)
    figures.record(widest=10, items=8, tokens=80, seconds=4.0, side_by_side=2)
    assert figures.seconds_per_token(10) == pytest.approx(4.0 / 80 / 2)
    assert figures.tokens_per_second(10) == pytest.approx(40.0)
    assert figures.seconds({length_class(10): 40}) == pytest.approx(1.0)


def test_a_pass_that_ran_alone_stands_in_only_until_one_beside_the_others() -> None:
    figures = estimate(forward_workers=2)
    figures.record(widest=10, items=8, tokens=80, seconds=2.0, side_by_side=1)  # alone: faster
    assert figures.seconds_per_token(10) == pytest.approx(2.0 / 80 / 2)
    figures.record(widest=10, items=8, tokens=80, seconds=4.0, side_by_side=2)  # under load
    assert figures.seconds_per_token(10) == pytest.approx(4.0 / 80 / 2)
    figures.record(widest=10, items=8, tokens=80, seconds=1.0, side_by_side=1)  # ignored now
    assert figures.seconds_per_token(10) == pytest.approx(4.0 / 80 / 2)


def test_a_full_batch_replaces_a_partial_one_and_partial_batches_never_blur_it() -> None:
    figures = estimate()
    figures.record(widest=10, items=1, tokens=10, seconds=1.0)  # partial: stands in
    assert figures.seconds_per_token(10) == pytest.approx(0.1)
    figures.record(widest=10, items=8, tokens=80, seconds=2.0)  # full: replaces it
    assert figures.seconds_per_token(10) == pytest.approx(0.025)
    figures.record(widest=10, items=1, tokens=10, seconds=5.0)  # partial: ignored now
    assert figures.seconds_per_token(10) == pytest.approx(0.025)
    figures.record(widest=10, items=8, tokens=80, seconds=4.0)  # full: averaged in
    assert figures.seconds_per_token(10) == pytest.approx(0.025 + SMOOTHING * 0.025)


def test_a_batch_is_full_by_its_padded_tokens_as_well_as_by_its_count() -> None:
    figures = estimate()
    figures.record(widest=250, items=2, tokens=500, seconds=5.0)  # 2 * 250 padded: half of 1000
    figures.record(widest=250, items=1, tokens=250, seconds=100.0)
    assert figures.seconds_per_token(250) == pytest.approx(0.01)


def test_an_unmeasured_length_borrows_from_the_nearest_longer_class_else_the_shorter() -> None:
    figures = estimate()
    figures.record(widest=16, items=8, tokens=128, seconds=1.28)  # 0.01 s/token
    figures.record(widest=256, items=8, tokens=2048, seconds=40.96)  # 0.02 s/token
    assert figures.seconds_per_token(64) == pytest.approx(0.02)
    assert figures.seconds_per_token(4) == pytest.approx(0.01)
    assert figures.seconds_per_token(1000) == pytest.approx(0.02)
    assert figures.seconds({length_class(16): 100, length_class(64): 100}) == pytest.approx(3.0)


def test_empty_or_negative_samples_are_ignored() -> None:
    figures = estimate()
    figures.record(widest=10, items=0, tokens=0, seconds=1.0)
    figures.record(widest=10, items=8, tokens=80, seconds=-1.0)
    assert not figures
