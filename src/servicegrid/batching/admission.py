"""Admission control: take a request only if it can finish by its deadline.

The queue is served earliest deadline first, so a new request runs after the
work already formed into batches (the backlog) and after every waiting request
due no later than it. It is refused when, at the engine's measured throughput,

- it would finish after its own deadline, or
- its work would push a waiting request that was going to make its deadline
  past it (a later request must not cost an earlier promise).

Refusing at the door costs the caller a round trip and no model time; taking a
request that cannot finish costs model time that other requests needed, and
the caller still fails, only later.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from servicegrid._validate import check_count
from servicegrid.batching.throughput import ThroughputEstimate, by_class
from servicegrid.batching.waiting import JobQueue, Pending, serving_key
from servicegrid.errors import ResourceExhausted

__all__ = [
    "RETRY_AFTER",
    "AdmissionControl",
    "Planned",
    "Refusal",
    "Reservation",
    "admit",
]

RETRY_AFTER = 0.1
"""Seconds: the least ``retry_after`` hint on ResourceExhausted for a full queue."""


@dataclass(frozen=True, slots=True)
class Planned:
    """A waiting request as admission sees it: when it is due and its engine seconds."""

    deadline: float | None
    seconds: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused, and when trying again could succeed (None: never as it is)."""

    reason: str
    retry_after: float | None


def admit(
    request: Planned,
    *,
    queued: Iterable[Planned],
    backlog: float,
    now: float,
) -> Refusal | None:
    """None when ``request`` fits; otherwise the refusal.

    ``queued`` is the waiting requests in serving order, ``backlog`` the engine
    seconds of the batches already formed. A refused request's ``retry_after``
    is when the same request, with the same timeout, would fit if nothing else
    arrived: after the work it overshoots by has drained, or after the
    request it would have made late has finished.
    """
    ahead = backlog
    behind: list[Planned] = []
    for other in queued:
        # serving order: every request due by this one's deadline comes first
        if not behind and _due_by(other.deadline, request.deadline):
            ahead += other.seconds
        else:
            behind.append(other)
    if request.deadline is not None:
        left = request.deadline - now
        if request.seconds > left:
            return Refusal(
                f"needs about {request.seconds:.1f} s of model time and its deadline is"
                f" {max(left, 0.0):.1f} s away: give it a longer deadline or send fewer items",
                None,
            )
        if ahead + request.seconds > left:
            overshoot = ahead + request.seconds - left
            return Refusal(
                f"would finish in about {ahead + request.seconds:.1f} s, {overshoot:.1f} s after"
                f" its deadline: {ahead:.1f} s of work is queued ahead of it",
                overshoot,
            )
    finish = ahead  # of each request behind, without this one
    for other in behind:
        finish += other.seconds
        if other.deadline is not None and finish <= other.deadline - now < finish + request.seconds:
            return Refusal(
                f"would make a request queued earlier miss its deadline:"
                f" {ahead:.1f} s of work is queued ahead of it",
                finish,
            )
    return None


def _due_by(deadline: float | None, limit: float | None) -> bool:
    """True when a request due at ``deadline`` is served before one due at ``limit``."""
    if deadline is None:
        return limit is None
    return limit is None or deadline <= limit


@dataclass(eq=False, slots=True)
class Reservation:
    """A request admitted on estimated costs, holding its place while its items are built.

    Hand it to ``BatchEngine.submit_many(..., reservation=...)``, which turns it
    into the queued request in the same place; closing it (``with`` does)
    gives the place up if that never happens.
    """

    deadline: float | None
    items: int
    tokens_by_class: Counter[int]
    arrival: int
    release: Callable[[Reservation], None]

    @property
    def key(self) -> tuple[float, int]:
        return serving_key(self.deadline, self.arrival)

    def close(self) -> None:
        self.release(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AdmissionControl:
    """The door of one engine: the queue's bounds, and deadlines at the measured throughput.

    Counts the places held by reservations as waiting work, and keeps the
    backlog: the estimated engine seconds of the batches formed and not yet
    answered. Event-loop confined.
    """

    def __init__(
        self,
        throughput: ThroughputEstimate,
        *,
        max_queue: int,
        max_queue_tokens: int,
        service: str | None = None,
    ) -> None:
        self.throughput = throughput
        self.max_queue = check_count("max_queue", max_queue)
        self.max_queue_tokens = check_count("max_queue_tokens", max_queue_tokens)
        self.service = service
        self.backlog = 0.0
        self.rejected = 0
        """Requests refused because the queue was full."""
        self.refused_late = 0
        """Requests refused because they could not finish by their deadline."""
        self._reserved: dict[Reservation, None] = {}
        self._reserved_items = 0
        self._reserved_tokens = 0

    def reserve(
        self,
        items: int,
        tokens_by_class: Counter[int],
        deadline: float | None,
        arrival: int,
        waiting: JobQueue[Any, Any],
        now: float,
    ) -> Reservation:
        """:meth:`check`, then hold the request's place until it is queued or closed."""
        self.check(items, tokens_by_class, deadline, waiting, now)
        held = Reservation(deadline, items, tokens_by_class, arrival, self._release)
        self._reserved[held] = None
        self._reserved_items += items
        self._reserved_tokens += sum(tokens_by_class.values())
        return held

    def _release(self, held: Reservation) -> None:
        if held in self._reserved:
            del self._reserved[held]
            self._reserved_items -= held.items
            self._reserved_tokens -= sum(held.tokens_by_class.values())

    def check(
        self,
        items: int,
        tokens_by_class: Mapping[int, int],
        deadline: float | None,
        waiting: JobQueue[Any, Any],
        now: float,
    ) -> None:
        """Raise ResourceExhausted unless a request of ``items`` items fits and can finish in time.

        ``tokens_by_class`` is its tokens by :func:`length_class`.
        """
        tokens = sum(tokens_by_class.values())
        queued_items = len(waiting) + self._reserved_items
        queued_tokens = waiting.tokens + self._reserved_tokens
        over = max(
            (queued_items + items - self.max_queue) / self.max_queue,
            (queued_tokens + tokens - self.max_queue_tokens) / self.max_queue_tokens,
        )
        if over > 0:
            self.rejected += 1
            fits = items <= self.max_queue and tokens <= self.max_queue_tokens
            raise ResourceExhausted(
                f"batch queue full: {queued_items} items ({queued_tokens} tokens) waiting"
                f" of {self.max_queue} ({self.max_queue_tokens}),"
                f" {items} more ({tokens} tokens) refused",
                service=self.service,
                retry_after=max(RETRY_AFTER, over * self.queued_seconds(waiting)) if fits else None,
            )
        if not self.throughput:
            return  # nothing measured yet: no figure to refuse by
        refusal = admit(
            Planned(deadline, self.throughput.seconds(tokens_by_class)),
            queued=self._planned(waiting),
            backlog=self.backlog,
            now=now,
        )
        if refusal is not None:
            self.refused_late += 1
            raise ResourceExhausted(
                f"refused: {refusal.reason}", service=self.service, retry_after=refusal.retry_after
            )

    def _planned(self, waiting: JobQueue[Any, Any]) -> Iterator[Planned]:
        """Waiting requests and reserved places, in serving order."""
        seconds = self.throughput.seconds
        held = sorted(self._reserved, key=lambda r: r.key)
        for _, deadline, tokens in heapq.merge(
            ((job.key, job.deadline, job.tokens_by_class) for job in waiting),
            ((r.key, r.deadline, r.tokens_by_class) for r in held),
            key=operator.itemgetter(0),
        ):
            yield Planned(deadline, seconds(tokens))

    def is_full(self, waiting: JobQueue[Any, Any]) -> bool:
        return (
            len(waiting) + self._reserved_items >= self.max_queue
            or waiting.tokens + self._reserved_tokens >= self.max_queue_tokens
        )

    def queued_seconds(self, waiting: JobQueue[Any, Any]) -> float:
        """Estimated engine seconds of everything formed, waiting and reserved."""
        return self.backlog + sum(planned.seconds for planned in self._planned(waiting))

    def formed(self, batch: Iterable[Pending[Any, Any]]) -> float:
        """Count a formed batch into the backlog; its estimated seconds."""
        estimate = self.throughput.seconds(by_class(entry.cost for entry in batch))
        self.backlog += estimate
        return estimate

    def answered(self, estimate: float) -> None:
        """Take a batch that :meth:`formed` counted out of the backlog."""
        self.backlog -= estimate
        if self.backlog < 1e-9:  # rounding must not leave a phantom backlog behind
            self.backlog = 0.0
