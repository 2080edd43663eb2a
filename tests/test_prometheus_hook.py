"""The Prometheus hook counts what the policies report."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from servicegrid.errors import ConnectError, ServiceUnavailable
from servicegrid.hooks.prometheus import PrometheusHook
from servicegrid.resilience import CircuitBreaker, ConstantBackoff, Pipeline, Retry
from servicegrid.testing import FakeClock


def test_retries_transitions_and_rejections_are_counted() -> None:
    registry = CollectorRegistry()
    hook = PrometheusHook(registry)
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=2, recovery_timeout=10.0, name="svc", clock=clock, hooks=[hook]
    )
    retry = Retry(attempts=3, backoff=ConstantBackoff(1.0), name="svc", clock=clock, hooks=(hook,))
    pipeline = Pipeline(retry, breaker)

    def down() -> None:
        raise ConnectError("refused")

    with pytest.raises(ConnectError):
        pipeline.call(down)
    with pytest.raises(ServiceUnavailable):
        pipeline.call(down)

    value = registry.get_sample_value
    assert value("servicegrid_retries_total", {"name": "svc"}) == 1
    assert value("servicegrid_retry_give_ups_total", {"name": "svc", "reason": "circuit_open"}) == 1
    assert value("servicegrid_breaker_transitions_total", {"name": "svc", "to": "open"}) == 1
    assert value("servicegrid_breaker_open", {"name": "svc"}) == 1
    assert value("servicegrid_rejections_total", {"name": "svc", "policy": "breaker"}) == 1

    clock.advance(10.0)
    pipeline.call(lambda: None)
    assert value("servicegrid_breaker_open", {"name": "svc"}) == 0
    assert value("servicegrid_breaker_transitions_total", {"name": "svc", "to": "closed"}) == 1
