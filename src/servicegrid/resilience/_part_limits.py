"""Public names of the rate limiters, bulkhead, fault injection and health monitor."""

from servicegrid.resilience.bulkhead import Bulkhead
from servicegrid.resilience.faults import FaultInjection
from servicegrid.resilience.health import (
    HealthCheck,
    HealthCheckResult,
    HealthMonitor,
    HealthState,
    StateChangeHook,
)
from servicegrid.resilience.ratelimit import LimitMode, RateLimitConfig, SlidingWindow, TokenBucket

__all__ = [
    "Bulkhead",
    "FaultInjection",
    "HealthCheck",
    "HealthCheckResult",
    "HealthMonitor",
    "HealthState",
    "LimitMode",
    "RateLimitConfig",
    "SlidingWindow",
    "StateChangeHook",
    "TokenBucket",
]
