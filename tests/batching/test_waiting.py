"""Batch formation: count and padded token budget, oldest first, sorted by cost."""

from __future__ import annotations

import asyncio

import pytest

from servicegrid.batching import fit_count, padded_cost
from servicegrid.batching.waiting import Pending, WaitQueue


def test_padded_cost_is_count_times_widest() -> None:
    assert padded_cost([]) == 0
    assert padded_cost([3, 1, 2]) == 9


@pytest.mark.parametrize(
    ("costs", "max_items", "max_tokens", "expected"),
    [
        ([3, 3, 3, 3], 32, 10, 3),  # 4 * 3 = 12 > 10
        ([1, 1, 1, 12], 32, 10, 3),  # the wide one would pad the rest to 4 * 12
        ([12, 1], 32, 10, 1),  # over budget alone: still runs, alone
        ([1] * 10, 4, 100, 4),  # count bound
        ([0, 0, 0], 32, 1, 3),  # zero cost never fills the budget
        ([], 32, 10, 0),
    ],
)
def test_fit_count(costs: list[int], max_items: int, max_tokens: int, expected: int) -> None:
    assert fit_count(costs, max_items=max_items, max_tokens=max_tokens) == expected


async def test_take_is_oldest_first_sorted_and_splits_off_expired() -> None:
    loop = asyncio.get_running_loop()
    waiting: WaitQueue[str, int] = WaitQueue(10)

    def pending(item: str, cost: int, deadline: float | None = None) -> Pending[str, int]:
        return Pending(item, cost, deadline, loop.create_future())

    a, late, b, gone, c, d = (
        pending("a", 3),
        pending("late", 1, deadline=5.0),
        pending("b", 1),
        pending("gone", 1),
        pending("c", 2),
        pending("d", 9),
    )
    waiting.push([a, late, b, gone, c, d])
    gone.future.cancel()
    assert waiting.room() == 4
    assert waiting.ready(max_items=32, max_tokens=10)  # d cannot join a, b, c

    batch, expired = waiting.take(max_items=32, max_tokens=10, now=5.0)

    assert [p.item for p in batch] == ["b", "c", "a"]  # a, b, c by age; sorted by cost
    assert expired == [late]
    assert [p.item for p in waiting.drain()] == ["d"]
    assert len(waiting) == 0
    assert not waiting.ready(max_items=32, max_tokens=10)
