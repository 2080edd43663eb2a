"""The hosts a client routes over: lookup by name, replacement from discovery, and leasing
the next attempt to an eligible host chosen by the strategy."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Collection, Sequence

from servicegrid.errors import (
    BulkheadFull,
    ServiceError,
    ServiceUnavailable,
    ServiceUnavailableError,
)
from servicegrid.llm.hosts import Attempt, HostState, LLMHost
from servicegrid.llm.strategies import Picker

__all__ = ["HostPool", "check_unique"]

_SERVICE = "llm"


def check_unique(hosts: Sequence[LLMHost]) -> None:
    """Raise ValueError naming any host name given twice."""
    twice = sorted(name for name, count in Counter(h.name for h in hosts).items() if count > 1)
    if twice:
        raise ValueError(f"LLM host names must be unique; given more than once: {twice}")


class HostPool:
    """The current hosts, in order; their states outlive a :meth:`replace` that keeps them."""

    def __init__(
        self,
        hosts: Sequence[LLMHost],
        *,
        make_state: Callable[[LLMHost], HostState],
        picker: Picker,
        rng: random.Random,
    ) -> None:
        self._make_state = make_state
        self._picker = picker
        self._rng = rng
        self._states: tuple[HostState, ...] = ()
        self._by_name: dict[str, HostState] = {}
        self.replace(hosts)

    @property
    def states(self) -> tuple[HostState, ...]:
        return self._states

    def __len__(self) -> int:
        return len(self._states)

    def get(self, name: str) -> HostState:
        """The host called ``name``; KeyError naming the known ones otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name) or "none"
            raise KeyError(f"no LLM host named {name!r} (known: {known})") from None

    def replace(self, hosts: Sequence[LLMHost]) -> None:
        """Route over ``hosts`` from now on; a host whose name and URL stay keeps its state."""
        check_unique(hosts)
        states = []
        for position, host in enumerate(hosts):
            state = self._by_name.get(host.name)
            if state is None or state.host.url != host.url:
                state = self._make_state(host)
            state.position = position
            states.append(state)
        self._states = tuple(states)
        self._by_name = {state.name: state for state in states}

    def lease(self, exclude: Collection[str] = ()) -> Attempt | None:
        """Admit an attempt on the host the strategy picks among the eligible ones not in
        ``exclude``; None when there is none."""
        candidates = [
            s
            for s in self._states
            if s.enabled and s.name not in exclude and s.has_room() and s.breaker.admits_after(0)
        ]
        while candidates:
            state = self._picker(candidates, self._rng)
            try:
                return state.admit()
            except ServiceUnavailable:  # its half-open trial went to a call just before us
                candidates.remove(state)
        return None

    def unavailable(self, exclude: Collection[str] = ()) -> ServiceError:
        """Why :meth:`lease` found no host: ServiceUnavailable when breakers are open,
        BulkheadFull when hosts are at ``max_concurrent``, ServiceUnavailableError otherwise."""
        enabled = [s for s in self._states if s.enabled and s.name not in exclude]
        if not self._states:
            return ServiceUnavailableError("no LLM host is known", service=_SERVICE)
        if not enabled:
            return ServiceUnavailableError("no enabled LLM host", service=_SERVICE)
        open_ = [s for s in enabled if not s.breaker.admits_after(0)]
        full = [s.name for s in enabled if not s.has_room()]
        if open_:
            waits = [w for s in open_ if (w := s.breaker.retry_after()) is not None]
            return ServiceUnavailable(
                f"no LLM host can take the call: circuit open for {[s.name for s in open_]}"
                + (f", at max_concurrent: {full}" if full else ""),
                service=_SERVICE,
                retry_after=min(waits, default=None),
            )
        if full:
            return BulkheadFull(
                f"every enabled LLM host is at its max_concurrent: {full}", service=_SERVICE
            )
        return ServiceUnavailableError("no LLM host can take the call", service=_SERVICE)
