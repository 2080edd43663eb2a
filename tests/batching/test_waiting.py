"""The job queue: earliest deadline first, a request's items together, budgets, leaving."""

from __future__ import annotations

import asyncio

import pytest

from servicegrid.batching import fit_count, padded_cost
from servicegrid.batching.waiting import Job, JobQueue, Pending


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


class Jobs:
    """Builds jobs of named items (cost = the number after the letter, default 1)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.arrivals = 0

    def __call__(
        self, *names: str, deadline: float | None = None, per_batch: int = 32
    ) -> Job[str, int]:
        entries = [
            Pending(name, int(name[1:] or 1), deadline, self.loop.create_future()) for name in names
        ]
        self.arrivals += 1
        return Job(entries, deadline, self.arrivals, per_batch)


def names(batch: list[Pending[str, int]]) -> list[str]:
    return [entry.item for entry in batch]


async def test_jobs_are_served_earliest_deadline_first_then_by_arrival() -> None:
    job = Jobs()
    queue: JobQueue[str, int] = JobQueue()
    for built in (
        job("n"),  # no deadline: last
        job("b", deadline=20.0),
        job("a", deadline=10.0),
        job("c", deadline=20.0),  # same deadline as b, arrived later
    ):
        queue.push(built)

    order = []
    while queue:
        batch, expired = queue.take(max_items=1, max_tokens=100, now=0.0)
        assert expired == []
        order.extend(names(batch))
    assert order == ["a", "b", "c", "n"]


async def test_a_jobs_items_stay_together_and_fill_a_batch_before_the_next_job() -> None:
    job = Jobs()
    queue: JobQueue[str, int] = JobQueue()
    queue.push(job("a", "a", "a", "a", "a", "a"))
    queue.push(job("b", "b", "b", "b", "b", "b"))
    batches = []
    while queue:
        batch, _ = queue.take(max_items=4, max_tokens=100, now=0.0)
        batches.append("".join(names(batch)))
    assert batches == ["aaaa", "aabb", "bbbb"]


async def test_per_batch_caps_one_jobs_share_of_a_batch() -> None:
    job = Jobs()
    queue: JobQueue[str, int] = JobQueue()
    queue.push(job("a", "a", "a", per_batch=2))
    queue.push(job("b", "b", "b"))
    batch, _ = queue.take(max_items=4, max_tokens=100, now=0.0)
    assert names(batch) == ["a", "a", "b", "b"]


async def test_the_token_budget_stops_a_batch_at_the_first_item_that_does_not_fit() -> None:
    job = Jobs()
    queue: JobQueue[str, int] = JobQueue()
    queue.push(job("a3", "a3", "a3", "a3"))
    queue.push(job("b1"))
    assert queue.ready(max_items=32, max_tokens=10)  # the fourth a3 cannot join
    batch, _ = queue.take(max_items=32, max_tokens=10, now=0.0)
    assert names(batch) == ["a3", "a3", "a3"]
    batch, _ = queue.take(max_items=32, max_tokens=10, now=0.0)
    assert names(batch) == ["b1", "a3"]  # sorted by cost within the batch
    assert not queue


async def test_an_expired_job_leaves_whole_and_a_done_item_is_dropped() -> None:
    job = Jobs()
    queue: JobQueue[str, int] = JobQueue()
    late = job("l", "l", deadline=5.0)
    kept = job("k", "g", "k", deadline=50.0)
    queue.push(late)
    queue.push(kept)
    kept.entries[1].future.cancel()
    assert (len(queue), queue.tokens, queue.jobs) == (5, 5, 2)

    batch, expired = queue.take(max_items=32, max_tokens=100, now=5.0)

    assert names(batch) == ["k", "k"]
    assert names(expired) == ["l", "l"]
    assert (len(queue), queue.tokens, queue.jobs) == (0, 0, 0)


async def test_discard_takes_what_is_left_of_a_job_out_and_drain_empties_the_queue() -> None:
    job = Jobs()
    queue: JobQueue[str, int] = JobQueue()
    first = job("a2", "a2", "a2")
    second = job("b", "b")
    queue.push(first)
    queue.push(second)
    batch, _ = queue.take(max_items=2, max_tokens=100, now=0.0)
    assert names(batch) == ["a2", "a2"]
    assert (len(queue), queue.tokens) == (3, 4)

    queue.discard(first)
    queue.discard(first)  # twice is harmless
    assert (len(queue), queue.tokens, queue.jobs) == (2, 2, 1)
    assert list(queue) == [second]

    assert names(queue.drain()) == ["b", "b"]
    assert (len(queue), queue.tokens, queue.jobs) == (0, 0, 0)
    assert not queue.ready(max_items=32, max_tokens=10)
