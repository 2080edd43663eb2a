"""``DeferredRead``: seed 003's reads, which its code uses both with and without ``await``.

A read method of the async client returns one. It is a real
:class:`collections.abc.Coroutine`, so ``await read``, ``asyncio.run(read)``,
``asyncio.create_task(read)``, ``asyncio.gather(read, ...)`` and
``asyncio.wait_for(read, ...)`` all take it and send the request on the event
loop. Used directly as a mapping instead (``read["items"]``, ``.get``, ``in``,
iteration, ``len``, ``==`` against a dict) it sends the request *synchronously*,
once, and then behaves as the answer; ``read.result()`` does the same and
returns the answer itself. That request blocks the calling thread, an event
loop too when called from a coroutine, so code on a loop should ``await``.

The coroutine that sends on the loop is made only when the read is first
awaited or driven (``send``/``throw``), so a read used only as a mapping, or
not at all, leaves no "coroutine ... was never awaited" warning behind.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["DeferredRead"]

R = TypeVar("R", bound=dict[str, Any])


class DeferredRead(Mapping[str, Any], Coroutine[Any, Any, R], Generic[R]):
    """One read request: await it (or run it as a task), or use it as the mapping it fetches.

    ``fetch`` sends the request from the calling thread, ``afetch`` makes the coroutine
    that sends it on the event loop; ``describe`` names it in ``repr``. Whichever answers
    first is kept, and every later use, awaited or not, returns that same answer.

    A read is hashable by identity, as coroutines are, so ``asyncio.gather`` can take
    it; it equals another read only if it is that read, and equals any other mapping
    that equals its answer (fetching it).
    """

    __slots__ = ("_afetch", "_describe", "_driven", "_fetch", "_lock", "_value")

    def __init__(
        self, fetch: Callable[[], R], afetch: Callable[[], Awaitable[R]], describe: str
    ) -> None:
        self._fetch = fetch
        self._afetch = afetch
        self._describe = describe
        self._lock = threading.Lock()
        self._value: R | None = None
        # the coroutine ``send``/``throw``/``close`` drive, made on first use
        self._driven: Coroutine[Any, Any, R] | None = None

    @property
    def done(self) -> bool:
        """Whether the request has been answered."""
        return self._value is not None

    def result(self) -> R:
        """The answer, sending the request synchronously (blocking) if it has not been sent."""
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._fetch()
        return self._value

    # ---- the coroutine -------------------------------------------------------------

    async def _answer(self) -> R:
        if self._value is None:
            value = await self._afetch()
            if self._value is None:
                self._value = value
        return self._value

    def _coroutine(self) -> Coroutine[Any, Any, R]:
        if self._driven is None:
            self._driven = self._answer()
        return self._driven

    def __await__(self) -> Generator[Any, None, R]:
        return self._answer().__await__()

    def send(self, value: Any) -> Any:
        """Advance the request on the event loop (what a Task does with a coroutine)."""
        return self._coroutine().send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        """Raise an exception inside the pending request (a Task's cancellation)."""
        if val is None and tb is None:
            return self._coroutine().throw(typ)
        return self._coroutine().throw(typ, val, tb)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the request driven by ``send``; a read used as a mapping stays usable."""
        self._coroutine().close()

    # ---- the mapping ---------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.result()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.result())

    def __len__(self) -> int:
        return len(self.result())

    def __contains__(self, key: object) -> bool:
        return key in self.result()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeferredRead):
            return self is other
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.result() == other

    def __hash__(self) -> int:
        return object.__hash__(self)

    def __repr__(self) -> str:
        state = repr(self._value) if self._value is not None else "not sent"
        return f"DeferredRead({self._describe}: {state})"
