"""A pure-Python model for the batching engine: words in, ``len(text)`` out, with gates."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from servicegrid.batching import BatchEngine
from servicegrid.testing import FakeClock

GATE_TIMEOUT = 30.0  # a forgotten gate must not hang the suite


class Words:
    """ModelAdapter[str, list[str], list[int], int]: cost = words, result = len(text).

    Each stage records the batch it got *before* waiting on its gate, so a test
    can see a stage has started while the gate holds it. ``fail[(stage, text)]``
    makes that stage raise for any batch holding ``text``; ``short`` makes
    postprocess drop a result for a batch holding one of its texts.
    """

    def __init__(self) -> None:
        self.preprocess_gate = threading.Event()
        self.forward_gate = threading.Event()
        self.preprocess_gate.set()
        self.forward_gate.set()
        self.preprocessed: list[list[str]] = []
        self.forwarded: list[list[str]] = []
        self.fail: dict[tuple[str, str], BaseException] = {}
        self.short: set[str] = set()
        self._changed = threading.Condition()

    def cost(self, item: str) -> int:
        return len(item.split())

    def preprocess(self, items: Sequence[str]) -> list[str]:
        self._record(self.preprocessed, items)
        self.preprocess_gate.wait(GATE_TIMEOUT)
        self._maybe_raise("preprocess", items)
        return list(items)

    def forward(self, prepared: list[str]) -> list[int]:
        self._record(self.forwarded, prepared)
        self.forward_gate.wait(GATE_TIMEOUT)
        self._maybe_raise("forward", prepared)
        return [len(text) for text in prepared]

    def postprocess(self, raw: list[int], items: Sequence[str]) -> list[int]:
        self._maybe_raise("postprocess", items)
        return raw[:-1] if self.short.intersection(items) else raw

    def release(self) -> None:
        self.preprocess_gate.set()
        self.forward_gate.set()

    def _record(self, log: list[list[str]], items: Sequence[str]) -> None:
        with self._changed:
            log.append(list(items))
            self._changed.notify_all()

    def _maybe_raise(self, stage: str, items: Sequence[str]) -> None:
        for text in items:
            if (stage, text) in self.fail:
                raise self.fail[stage, text]

    def _saw(self, log: list[list[str]], text: str) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(text in b for b in log), GATE_TIMEOUT)

    async def preprocess_started(self, text: str) -> None:
        """Wait until preprocess was called with a batch holding ``text``."""
        assert await asyncio.to_thread(self._saw, self.preprocessed, text), text

    async def forward_started(self, text: str) -> None:
        """Wait until forward was called with a batch holding ``text``."""
        assert await asyncio.to_thread(self._saw, self.forwarded, text), text


class TimedWords(Words):
    """Words whose forward pass takes ``per_token`` seconds of a fake clock per word."""

    def __init__(self, clock: FakeClock, *, per_token: float) -> None:
        super().__init__()
        self.clock = clock
        self.per_token = per_token

    def forward(self, prepared: list[str]) -> list[int]:
        result = super().forward(prepared)
        self.clock.advance(self.per_token * sum(self.cost(text) for text in prepared))
        return result


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate()`` holds (fails after a generous GATE_TIMEOUT)."""
    give_up = time.monotonic() + GATE_TIMEOUT
    while not predicate():
        assert time.monotonic() < give_up, "condition never held"
        await asyncio.sleep(0.001)


@asynccontextmanager
async def running(adapter: Words, **options: Any) -> AsyncIterator[BatchEngine[str, int]]:
    """A started engine; on the way out every gate opens and the engine closes."""
    engine: BatchEngine[str, int] = BatchEngine(adapter, **options)
    await engine.start()
    try:
        yield engine
    finally:
        adapter.release()
        await asyncio.wait_for(engine.aclose(), GATE_TIMEOUT)
