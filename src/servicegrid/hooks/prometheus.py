"""Resilience events as Prometheus metrics (needs the ``prometheus`` extra).

.. code-block:: python

    hook = PrometheusHook()                       # registers on the default registry
    client = EnhancedHTTPClient("search", url, hooks=[hook])

Metrics: ``servicegrid_retries_total{name}``, ``servicegrid_retry_give_ups_total{name,reason}``,
``servicegrid_breaker_transitions_total{name,to}``, ``servicegrid_breaker_open{name}``
(1 while open or forced open), ``servicegrid_rejections_total{name,policy}``,
``servicegrid_faults_injected_total{name,kind}``.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from servicegrid.resilience.events import (
    BreakerTransitioned,
    CallRejected,
    Event,
    FaultInjected,
    RetryGaveUp,
    RetryScheduled,
)

__all__ = ["PrometheusHook"]

_OPEN_STATES = frozenset({"open", "forced_open"})


class PrometheusHook:
    """Counts resilience events; one instance per registry (metric names must be unique)."""

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, *, prefix: str = "servicegrid"
    ) -> None:
        self.retries = Counter(
            f"{prefix}_retries",
            "Retries scheduled after a failed attempt",
            ["name"],
            registry=registry,
        )
        self.give_ups = Counter(
            f"{prefix}_retry_give_ups",
            "Calls that stopped retrying, by reason",
            ["name", "reason"],
            registry=registry,
        )
        self.transitions = Counter(
            f"{prefix}_breaker_transitions",
            "Circuit breaker state changes, by new state",
            ["name", "to"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            f"{prefix}_breaker_open", "1 while the circuit is open", ["name"], registry=registry
        )
        self.rejections = Counter(
            f"{prefix}_rejections",
            "Calls refused by a local policy",
            ["name", "policy"],
            registry=registry,
        )
        self.faults = Counter(
            f"{prefix}_faults_injected",
            "Faults injected on purpose",
            ["name", "kind"],
            registry=registry,
        )

    def __call__(self, event: Event) -> None:
        match event:
            case RetryScheduled(name=name):
                self.retries.labels(name).inc()
            case RetryGaveUp(name=name, reason=reason):
                self.give_ups.labels(name, reason).inc()
            case BreakerTransitioned(name=name, new=new):
                self.transitions.labels(name, new).inc()
                self.breaker_open.labels(name).set(1 if new in _OPEN_STATES else 0)
            case CallRejected(name=name, policy=policy):
                self.rejections.labels(name, policy).inc()
            case FaultInjected(name=name, kind=kind):
                self.faults.labels(name, kind).inc()
            case _:
                pass
