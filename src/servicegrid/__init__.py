"""servicegrid: run AI model services and wire services together through one resilience layer.

.. code-block:: python

    from servicegrid import ResilientServiceClient, ServiceUnavailable
"""

from servicegrid.clients import (
    AsyncHTTPClient,
    ConnectionPoolConfig,
    EmbeddingClient,
    EnhancedHTTPClient,
    HealthChecker,
    HealthStatus,
    RerankingClient,
    ResilientServiceClient,
    RetryConfig,
    ServiceClientConfig,
    ServiceClientFactory,
    TimeoutConfig,
)
from servicegrid.errors import (
    ErrorCategory,
    ErrorSeverity,
    MaxRetriesExceededError,
    ResourceNotFoundError,
    RetryStrategy,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailable,
    ServiceUnavailableError,
    ValidationError,
    is_retryable,
)
from servicegrid.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    ExponentialBackoff,
    Pipeline,
    Retry,
    Timeout,
)
from servicegrid.resilience.health import HealthMonitor, HealthState
from servicegrid.resilience.ratelimit import RateLimitConfig, SlidingWindow, TokenBucket
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REGISTRY",
    "AsyncHTTPClient",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitState",
    "ConnectionPoolConfig",
    "EmbeddingClient",
    "EnhancedHTTPClient",
    "ErrorCategory",
    "ErrorSeverity",
    "ExponentialBackoff",
    "HealthChecker",
    "HealthMonitor",
    "HealthState",
    "HealthStatus",
    "MaxRetriesExceededError",
    "Pipeline",
    "RateLimitConfig",
    "RerankingClient",
    "ResilientServiceClient",
    "ResourceNotFoundError",
    "Retry",
    "RetryConfig",
    "RetryStrategy",
    "ServiceClientConfig",
    "ServiceClientFactory",
    "ServiceError",
    "ServiceTimeoutError",
    "ServiceUnavailable",
    "ServiceUnavailableError",
    "SlidingWindow",
    "StatusRegistry",
    "Timeout",
    "TimeoutConfig",
    "TokenBucket",
    "ValidationError",
    "__version__",
    "is_retryable",
]
