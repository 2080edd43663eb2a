"""The resilience core: small policies composed into one pipeline.

Imports no network library and nothing from servicegrid but the leaf modules
``servicegrid.errors`` and ``servicegrid.clock``, so HTTP and gRPC, sync and
async callers all share the same semantics.
"""

from servicegrid.resilience._part_limits import (
    Bulkhead,
    FaultInjection,
    HealthCheck,
    HealthCheckResult,
    HealthMonitor,
    HealthState,
    LimitMode,
    RateLimitConfig,
    SlidingWindow,
    StateChangeHook,
    TokenBucket,
)
from servicegrid.resilience.backoff import (
    Backoff,
    ConstantBackoff,
    ExponentialBackoff,
    Jitter,
    LinearBackoff,
)
from servicegrid.resilience.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Override,
    Permit,
)
from servicegrid.resilience.budget import RetryBudget
from servicegrid.resilience.deadline import current_deadline, deadline_scope, remaining
from servicegrid.resilience.events import (
    BreakerTransitioned,
    CallRejected,
    CallSucceeded,
    Event,
    FaultInjected,
    Hook,
    RetryGaveUp,
    RetryScheduled,
)
from servicegrid.resilience.pipeline import Pipeline, build_pipeline
from servicegrid.resilience.policy import Policy
from servicegrid.resilience.retry import GiveUp, Retry, RetryState, Sleep
from servicegrid.resilience.retry_spec import RetrySpec
from servicegrid.resilience.timeout import Timeout

__all__ = [
    "Backoff",
    "BreakerTransitioned",
    "Bulkhead",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitState",
    "ConstantBackoff",
    "Event",
    "ExponentialBackoff",
    "FaultInjected",
    "FaultInjection",
    "GiveUp",
    "HealthCheck",
    "HealthCheckResult",
    "HealthMonitor",
    "HealthState",
    "Hook",
    "Jitter",
    "LimitMode",
    "LinearBackoff",
    "Override",
    "Permit",
    "Pipeline",
    "Policy",
    "RateLimitConfig",
    "Retry",
    "RetryBudget",
    "RetryGaveUp",
    "RetryScheduled",
    "RetrySpec",
    "RetryState",
    "Sleep",
    "SlidingWindow",
    "StateChangeHook",
    "Timeout",
    "TokenBucket",
    "build_pipeline",
    "current_deadline",
    "deadline_scope",
    "remaining",
]
