"""Acceptance: one breaker shared by threads, by tasks, and by both at once, against a real server.

A flipper switches the server between failing (503) and healthy many times while
the workers hammer it, so the breaker cycles through all its states. Every loop
is bounded by a count; the assertions are invariants, never timings:

* never more than one trial call in flight while the breaker is HALF_OPEN;
* every attempted call was either admitted (and ran) or rejected with
  ServiceUnavailable, and every admitted call ended in exactly one outcome;
* the reported transitions only use legal edges and balance out
  (closed→open→half_open→open|closed), and the breaker ends CLOSED.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from servicegrid.errors import (
    ConnectionLost,
    ServiceError,
    ServiceUnavailable,
    error_for_http_status,
)
from servicegrid.resilience.breaker import CircuitBreaker, CircuitState, Permit
from servicegrid.resilience.events import BreakerTransitioned, Event
from tests.support.faulty_server import FaultyServer

WORKERS = 64
CALLS = 50
FLIPS = 400
FLIP_EVERY = 0.005  # seconds between flips of the server
RECOVERY = 0.002  # the breaker's cool-down: tiny, so it cycles many times
REJECTED_PAUSE = 0.001  # a rejected caller waits this long before its next call
HTTP_TIMEOUT = httpx.Timeout(2.0, pool=10.0)
HTTP_CONCURRENCY = 8  # requests on the wire at once; the other admitted calls wait their turn
SETTLE_CALLS = 400

LEGAL = {
    ("closed", "open"),
    ("open", "half_open"),
    ("half_open", "open"),
    ("half_open", "closed"),
}

pytestmark = pytest.mark.timeout(60)


class InstrumentedBreaker(CircuitBreaker):
    """Counts every permit and outcome, and how many trial permits are out at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stats = threading.Lock()
        self.admitted = 0
        self.rejections = 0
        self.successes = 0
        self.failures = 0
        self.releases = 0
        self.trials = 0
        self.trials_in_flight = 0
        self.max_trials_in_flight = 0

    def acquire(self) -> Permit:
        try:
            permit = super().acquire()
        except ServiceUnavailable:
            with self.stats:
                self.rejections += 1
            raise
        with self.stats:
            self.admitted += 1
            if permit.trial:
                self.trials += 1
                self.trials_in_flight += 1
                self.max_trials_in_flight = max(self.max_trials_in_flight, self.trials_in_flight)
        return permit

    def _ended(self, permit: Permit, outcome: str) -> None:
        # counted before the breaker hears of it: the trial slot is not free yet
        with self.stats:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if permit.trial:
                self.trials_in_flight -= 1

    def record_success(self, permit: Permit, duration: float = 0.0) -> None:
        self._ended(permit, "successes")
        super().record_success(permit, duration)

    def record_failure(self, permit: Permit, duration: float = 0.0) -> None:
        self._ended(permit, "failures")
        super().record_failure(permit, duration)

    def release(self, permit: Permit) -> None:
        self._ended(permit, "releases")
        super().release(permit)


class Transitions:
    """A hook keeping every BreakerTransitioned event, in the order the hook received them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.edges: list[tuple[str, str]] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, BreakerTransitioned):
            with self.lock:
                self.edges.append((event.old, event.new))


@dataclass
class Tally:
    """What the callers saw; merged from every worker."""

    attempted: int = 0
    ok: int = 0
    failed: int = 0
    rejected: int = 0
    ran: int = 0

    def add(self, other: Tally) -> None:
        self.attempted += other.attempted
        self.ok += other.ok
        self.failed += other.failed
        self.rejected += other.rejected
        self.ran += other.ran


def make_breaker(hook: Transitions) -> InstrumentedBreaker:
    return InstrumentedBreaker(
        failure_threshold=3,
        recovery_timeout=RECOVERY,
        success_threshold=1,
        name="faulty",
        hooks=(hook,),
    )


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_for_http_status(response.status_code, service="faulty")


# The in-process server shares the GIL with the callers: a few requests on the wire at once
# keep it fast, while all the workers still hold breaker permits concurrently.
_WIRE = threading.BoundedSemaphore(HTTP_CONCURRENCY)


def sync_worker(breaker: CircuitBreaker, url: str, calls: int = CALLS) -> Tally:
    tally = Tally()

    def fetch(client: httpx.Client) -> None:
        tally.ran += 1
        try:
            with _WIRE:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise ConnectionLost(str(exc), service="faulty") from exc
        _raise_for(response)

    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        for _ in range(calls):
            tally.attempted += 1
            try:
                breaker.call_sync(fetch, client)
            except ServiceUnavailable:  # before ServiceError: it is one
                tally.rejected += 1
                time.sleep(REJECTED_PAUSE)
            except ServiceError:
                tally.failed += 1
            else:
                tally.ok += 1
    return tally


async def async_worker(
    breaker: CircuitBreaker, client: httpx.AsyncClient, url: str, calls: int = CALLS
) -> Tally:
    tally = Tally()

    async def fetch() -> None:
        tally.ran += 1
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            raise ConnectionLost(str(exc), service="faulty") from exc
        _raise_for(response)

    for _ in range(calls):
        tally.attempted += 1
        try:
            await breaker.call(fetch)
        except ServiceUnavailable:
            tally.rejected += 1
            await asyncio.sleep(REJECTED_PAUSE)
        except ServiceError:
            tally.failed += 1
        else:
            tally.ok += 1
    return tally


def flip_modes(server: FaultyServer, stop: threading.Event) -> None:
    """Switch the server between healthy and failing, a bounded number of times."""
    for flip in range(FLIPS):
        time.sleep(FLIP_EVERY)
        if stop.is_set():
            break
        if flip % 2 == 0:
            server.set(mode="ok")
        else:
            server.set(mode="fail", status=503)
    server.set(mode="ok")


def settle(breaker: CircuitBreaker, url: str) -> Tally:
    """With the server healthy, call until the breaker is CLOSED, then a few more calls."""
    tally = Tally()
    for _ in range(SETTLE_CALLS):
        if breaker.state is CircuitState.CLOSED:
            break
        part = sync_worker(breaker, url, calls=1)
        tally.add(part)
        if part.rejected:
            time.sleep(RECOVERY)  # let the cool-down pass
    tally.add(sync_worker(breaker, url, calls=10))
    return tally


def check_invariants(
    breaker: InstrumentedBreaker,
    hook: Transitions,
    tally: Tally,
    *,
    ordered: bool,
) -> None:
    # at most one trial in flight while HALF_OPEN, and none left over
    assert breaker.max_trials_in_flight <= 1
    assert breaker.trials_in_flight == 0
    assert breaker.trials > 0

    # every attempted call was admitted (and ran) or rejected; every admitted call ended once
    assert breaker.admitted + breaker.total_rejected == tally.attempted
    assert breaker.rejections == breaker.total_rejected == tally.rejected
    assert tally.ran == breaker.admitted
    assert breaker.successes + breaker.failures + breaker.releases == breaker.admitted
    assert breaker.total_successes == breaker.successes == tally.ok
    assert breaker.total_failures == breaker.failures == tally.failed
    assert tally.ok + tally.failed + tally.rejected == tally.attempted

    # transitions: only legal edges, balanced into a closed → ... → closed walk
    edges = Counter(hook.edges)
    assert set(edges) <= LEGAL, f"illegal transitions: {set(edges) - LEGAL}"
    assert edges["closed", "open"] == edges["half_open", "closed"]
    assert edges["open", "half_open"] == edges["half_open", "open"] + edges["half_open", "closed"]
    assert edges["closed", "open"] >= 1
    assert edges["open", "half_open"] >= 1
    assert edges["half_open", "closed"] >= 1
    if ordered:
        state = "closed"
        for old, new in hook.edges:
            assert old == state, f"{old}->{new} reported while the breaker was {state}"
            state = new
        assert state == "closed"

    # the server was left healthy and enough calls went through
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_status()["state"] == "closed"


def _run_threads(workers: int, fn: Callable[[], Tally]) -> Tally:
    tally = Tally()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for part in [pool.submit(fn) for _ in range(workers)]:
            tally.add(part.result())
    return tally


def test_breaker_shared_by_64_threads(server: FaultyServer) -> None:
    hook = Transitions()
    breaker = make_breaker(hook)
    url = f"{server.url}/embed"
    stop = threading.Event()
    flipper = threading.Thread(target=flip_modes, args=(server, stop))
    server.set(mode="fail", status=503)  # start failing: the breaker must open at least once
    flipper.start()
    try:
        tally = _run_threads(WORKERS, lambda: sync_worker(breaker, url))
    finally:
        stop.set()
        flipper.join(timeout=10)
    assert not flipper.is_alive()
    tally.add(settle(breaker, url))
    # hooks run outside the breaker's lock, so threads may deliver them out of order
    # (see test_breaker.py::test_hooks_see_transitions_in_the_order_they_happened)
    check_invariants(breaker, hook, tally, ordered=False)


async def test_breaker_shared_by_64_tasks(server: FaultyServer) -> None:
    hook = Transitions()
    breaker = make_breaker(hook)
    url = f"{server.url}/embed"
    done = asyncio.Event()

    async def flipper() -> None:
        for flip in range(FLIPS):
            await asyncio.sleep(FLIP_EVERY)
            if done.is_set():
                break
            if flip % 2 == 0:
                server.set(mode="ok")
            else:
                server.set(mode="fail", status=503)
        server.set(mode="ok")

    limits = httpx.Limits(max_connections=HTTP_CONCURRENCY)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=limits) as client:
        server.set(mode="fail", status=503)
        flipping = asyncio.create_task(flipper())
        try:
            parts = await asyncio.gather(
                *(async_worker(breaker, client, url) for _ in range(WORKERS))
            )
        finally:
            done.set()
            await flipping
        tally = Tally()
        for part in parts:
            tally.add(part)
        for _ in range(SETTLE_CALLS):
            if breaker.state is CircuitState.CLOSED:
                break
            part = await async_worker(breaker, client, url, calls=1)
            tally.add(part)
            if part.rejected:
                await asyncio.sleep(RECOVERY)
        tally.add(await async_worker(breaker, client, url, calls=10))
    # one event loop thread: hooks see transitions exactly in order
    check_invariants(breaker, hook, tally, ordered=True)


async def test_breaker_shared_by_threads_and_tasks_at_once(server: FaultyServer) -> None:
    hook = Transitions()
    breaker = make_breaker(hook)
    url = f"{server.url}/embed"
    stop = threading.Event()
    flipper = threading.Thread(target=flip_modes, args=(server, stop))
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=HTTP_CONCURRENCY)
    server.set(mode="fail", status=503)
    flipper.start()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=limits) as client:
                threaded = [
                    loop.run_in_executor(pool, sync_worker, breaker, url) for _ in range(WORKERS)
                ]
                tasks = [async_worker(breaker, client, url) for _ in range(WORKERS)]
                parts = await asyncio.gather(*threaded, *tasks)
    finally:
        stop.set()
        flipper.join(timeout=10)
    assert not flipper.is_alive()
    tally = Tally()
    for part in parts:
        tally.add(part)
    tally.add(await asyncio.to_thread(settle, breaker, url))
    check_invariants(breaker, hook, tally, ordered=False)
