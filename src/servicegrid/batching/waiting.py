"""Items waiting for a batch, and which of them form the next one.

Everything here runs on the event loop thread; nothing blocks or sleeps.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Generic, TypeVar

__all__ = ["Pending", "WaitQueue", "fit_count", "padded_cost"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(eq=False, slots=True)
class Pending(Generic[ItemT, ResultT]):
    """One submitted item: its cost, absolute ``clock.now()`` deadline and its own future."""

    item: ItemT
    cost: int
    deadline: float | None
    future: asyncio.Future[ResultT]


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


class WaitQueue(Generic[ItemT, ResultT]):
    """A FIFO of :class:`Pending` items, at most ``capacity``, with O(1) removal of any item."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Pending[ItemT, ResultT], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def room(self) -> int:
        """How many more items fit."""
        return self.capacity - len(self._entries)

    def push(self, entries: Iterable[Pending[ItemT, ResultT]]) -> None:
        """Append ``entries``; the caller has checked :meth:`room`."""
        for entry in entries:
            self._entries[entry] = None

    def discard(self, entries: Iterable[Pending[ItemT, ResultT]]) -> None:
        """Remove ``entries`` that are still waiting (a caller left)."""
        for entry in entries:
            self._entries.pop(entry, None)

    def ready(self, *, max_items: int, max_tokens: int) -> bool:
        """True when a full batch is waiting: by count, or because the next item would not fit."""
        costs = [entry.cost for entry in islice(self._entries, max_items)]
        count = fit_count(costs, max_items=max_items, max_tokens=max_tokens)
        return count >= max_items or count < len(costs)

    def take(
        self, *, max_items: int, max_tokens: int, now: float
    ) -> tuple[list[Pending[ItemT, ResultT]], list[Pending[ItemT, ResultT]]]:
        """Remove and return ``(batch, expired)``: the next batch, oldest first, sorted by cost.

        Items whose deadline is at or before ``now`` come back in ``expired``
        instead; items whose future is already done are dropped silently.
        """
        live: list[Pending[ItemT, ResultT]] = []
        gone: list[Pending[ItemT, ResultT]] = []
        expired: list[Pending[ItemT, ResultT]] = []
        for entry in self._entries:
            if len(live) >= max_items:
                break
            if entry.future.done():
                gone.append(entry)
            elif entry.deadline is not None and entry.deadline <= now:
                expired.append(entry)
            else:
                live.append(entry)
        costs = (entry.cost for entry in live)
        batch = live[: fit_count(costs, max_items=max_items, max_tokens=max_tokens)]
        self.discard(gone)
        self.discard(expired)
        self.discard(batch)
        # stable: equal costs keep their arrival order
        batch.sort(key=lambda entry: entry.cost)
        return batch, expired

    def drain(self) -> list[Pending[ItemT, ResultT]]:
        """Remove and return everything still waiting, oldest first."""
        entries = list(self._entries)
        self._entries.clear()
        return entries
