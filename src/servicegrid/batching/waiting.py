"""Requests waiting for the model, earliest deadline first, and which items form the next batch.

Each submit is one :class:`Job`. Jobs are served by deadline, then by arrival
(no deadline sorts last), and a batch is filled from the first job's items
before the next job's, so one request's items stay together in as few batches
as the budget allows: under overload a request finishes while others wait,
instead of every request getting a slice and none finishing in time.

Everything here runs on the event loop thread; nothing blocks or sleeps.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from servicegrid.batching.throughput import by_class, length_class

__all__ = ["Job", "JobQueue", "Pending", "fit_count", "padded_cost", "serving_key"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(eq=False, slots=True)
class Pending(Generic[ItemT, ResultT]):
    """One submitted item: its cost, absolute ``clock.now()`` deadline and its own future."""

    item: ItemT
    cost: int
    deadline: float | None
    future: asyncio.Future[ResultT]
    left: bool = False
    """Set once its caller stopped waiting; worker threads read it to skip dead work."""


@dataclass(eq=False, slots=True)
class Job(Generic[ItemT, ResultT]):
    """One submit's items in order; ``entries[:taken]`` have left the queue for a batch."""

    entries: list[Pending[ItemT, ResultT]]
    deadline: float | None
    arrival: int
    per_batch: int
    """At most this many of the job's items go into one batch."""
    taken: int = 0
    tokens_by_class: Counter[int] = field(default_factory=Counter)
    """Tokens of the items still waiting, by :func:`length_class`."""

    def __post_init__(self) -> None:
        self.tokens_by_class = by_class(entry.cost for entry in self.entries)

    @property
    def key(self) -> tuple[float, int]:
        return serving_key(self.deadline, self.arrival)

    def waiting(self) -> Sequence[Pending[ItemT, ResultT]]:
        return self.entries[self.taken :]


def serving_key(deadline: float | None, arrival: int) -> tuple[float, int]:
    """Where a request stands in the queue: by deadline (none is last), then by arrival."""
    return (math.inf if deadline is None else deadline, arrival)


def padded_cost(costs: Sequence[int]) -> int:
    """What a padded batch costs: ``len(costs) * max(costs)`` (0 when empty)."""
    return len(costs) * max(costs, default=0)


def fit_count(costs: Iterable[int], *, max_items: int, max_tokens: int) -> int:
    """How many of ``costs``, from the front, fit ``max_items`` and a padded ``max_tokens``.

    The first one always fits, so an item over the budget runs alone instead of starving.
    """
    count = top = 0
    for cost in costs:
        if count >= max_items:
            break
        widest = max(top, cost)
        if count and (count + 1) * widest > max_tokens:
            break
        count, top = count + 1, widest
    return count


class JobQueue(Generic[ItemT, ResultT]):
    """Waiting jobs in deadline order, with their items and tokens counted."""

    def __init__(self) -> None:
        self._jobs: list[Job[ItemT, ResultT]] = []
        self._keys: list[tuple[float, int]] = []
        self.items = 0
        self.tokens = 0

    def __len__(self) -> int:
        """Items waiting."""
        return self.items

    def __iter__(self) -> Iterator[Job[ItemT, ResultT]]:
        """The waiting jobs, in the order they are served."""
        return iter(self._jobs)

    @property
    def jobs(self) -> int:
        return len(self._jobs)

    def push(self, job: Job[ItemT, ResultT]) -> None:
        """Queue ``job`` behind every job with an earlier or equal deadline."""
        at = bisect.bisect_right(self._keys, job.key)
        self._jobs.insert(at, job)
        self._keys.insert(at, job.key)
        self.items += len(job.entries) - job.taken
        self.tokens += sum(job.tokens_by_class.values())

    def discard(self, job: Job[ItemT, ResultT]) -> None:
        """Remove ``job`` and whatever of it still waits (its caller left, or it expired)."""
        at = bisect.bisect_left(self._keys, job.key)
        if at < len(self._jobs) and self._jobs[at] is job:
            self._remove(at)

    def _remove(self, at: int) -> None:
        job = self._jobs.pop(at)
        del self._keys[at]
        self.items -= len(job.entries) - job.taken
        self.tokens -= sum(job.tokens_by_class.values())
        job.taken = len(job.entries)
        job.tokens_by_class.clear()

    def _take_one(self, job: Job[ItemT, ResultT]) -> Pending[ItemT, ResultT]:
        entry = job.entries[job.taken]
        job.taken += 1
        job.tokens_by_class[length_class(entry.cost)] -= entry.cost
        self.items -= 1
        self.tokens -= entry.cost
        return entry

    def ready(self, *, max_items: int, max_tokens: int) -> bool:
        """True when a full batch is waiting: by count, or because the next item would not fit."""
        count = top = 0
        for job in self._jobs:
            for entry in job.waiting()[: job.per_batch]:
                if count >= max_items:
                    return True
                widest = max(top, entry.cost)
                if count and (count + 1) * widest > max_tokens:
                    return True
                count, top = count + 1, widest
        return count >= max_items

    def take(
        self, *, max_items: int, max_tokens: int, now: float
    ) -> tuple[list[Pending[ItemT, ResultT]], list[Pending[ItemT, ResultT]]]:
        """Remove and return ``(batch, expired)``: the next batch, sorted by cost.

        The batch is filled job by job in deadline order, at most ``per_batch``
        items from each, and stops at the first item that would not fit. Jobs
        whose deadline is at or before ``now`` leave whole, their items in
        ``expired``; items whose future is already done are dropped silently.
        """
        batch: list[Pending[ItemT, ResultT]] = []
        expired: list[Pending[ItemT, ResultT]] = []
        top = 0
        at = 0
        full = False
        while at < len(self._jobs) and not full:
            job = self._jobs[at]
            if job.deadline is not None and job.deadline <= now:
                expired.extend(e for e in job.waiting() if not e.future.done())
                self._remove(at)
                continue
            took = 0
            while job.taken < len(job.entries) and took < job.per_batch:
                entry = job.entries[job.taken]
                if entry.future.done():
                    self._take_one(job)
                    continue
                widest = max(top, entry.cost)
                if len(batch) >= max_items or (batch and (len(batch) + 1) * widest > max_tokens):
                    full = True
                    break
                batch.append(self._take_one(job))
                top, took = widest, took + 1
            if job.taken == len(job.entries):
                self._remove(at)
            else:
                at += 1
        # stable: equal costs keep their order
        batch.sort(key=lambda entry: entry.cost)
        return batch, expired

    def drain(self) -> list[Pending[ItemT, ResultT]]:
        """Remove and return every waiting item, in serving order."""
        entries = [entry for job in self._jobs for entry in job.waiting()]
        while self._jobs:
            self._remove(len(self._jobs) - 1)
        return entries
