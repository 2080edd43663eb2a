"""servicegrid: run AI model services and wire services together through one resilience layer.

.. code-block:: python

    from servicegrid import ResilientServiceClient, ServiceUnavailable

The errors, the resilience policies and the status registry load with the
package; the clients (and with them httpx, requests and grpc) load
the first time one of their names is used, so ``import servicegrid.resilience``
pulls in no network library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicegrid._lazy import lazy_exports
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
    RetrySpec,
    Timeout,
    build_pipeline,
)
from servicegrid.resilience.health import HealthMonitor, HealthState
from servicegrid.resilience.ratelimit import RateLimitConfig, SlidingWindow, TokenBucket
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

if TYPE_CHECKING:
    from servicegrid.clients.api_gateway import APIGatewayClient, APIGatewayGRPCClient
    from servicegrid.clients.embedding import EmbeddingClient
    from servicegrid.clients.enhanced import (
        AsyncHTTPClient,
        ConnectionPoolConfig,
        EnhancedHTTPClient,
        RetryConfig,
        TimeoutConfig,
    )
    from servicegrid.clients.factory import ServiceClientFactory
    from servicegrid.clients.grpc_config import ServiceClientConfig
    from servicegrid.clients.health import HealthChecker, HealthStatus
    from servicegrid.clients.integration import (
        ServiceIntegrationClient,
        ServiceIntegrationClientSync,
    )
    from servicegrid.clients.questions import QuestionServiceClient, QuestionServiceGRPCClient
    from servicegrid.clients.reranking import RerankingClient
    from servicegrid.clients.resilient import ResilientServiceClient
    from servicegrid.clients.users import UserServiceClient, UserServiceGRPCClient
    from servicegrid.discovery import (
        Discovery,
        discover_all,
        discover_all_async,
        discover_service,
        discover_service_async,
    )
    from servicegrid.embeddings import EmbeddingResult, ProductionEmbeddingService
    from servicegrid.llm import DistributedLLMClient, LLMHost, LoadBalancingStrategy
    from servicegrid.llm.service import LLMRequest, LLMResponse, ProductionLLMService
    from servicegrid.models.local import LocalEmbeddingConfig, LocalEmbeddingModel, ModelBackend
    from servicegrid.retrieval.models import OrchestrationRequest, OrchestrationResponse
    from servicegrid.retrieval.orchestrator import OrchestratorService, orchestrator_service

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REGISTRY",
    "APIGatewayClient",
    "APIGatewayGRPCClient",
    "AsyncHTTPClient",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitState",
    "ConnectionPoolConfig",
    "Discovery",
    "DistributedLLMClient",
    "EmbeddingClient",
    "EmbeddingResult",
    "EnhancedHTTPClient",
    "ErrorCategory",
    "ErrorSeverity",
    "ExponentialBackoff",
    "HealthChecker",
    "HealthMonitor",
    "HealthState",
    "HealthStatus",
    "LLMHost",
    "LLMRequest",
    "LLMResponse",
    "LoadBalancingStrategy",
    "LocalEmbeddingConfig",
    "LocalEmbeddingModel",
    "MaxRetriesExceededError",
    "ModelBackend",
    "OrchestrationRequest",
    "OrchestrationResponse",
    "OrchestratorService",
    "Pipeline",
    "ProductionEmbeddingService",
    "ProductionLLMService",
    "QuestionServiceClient",
    "QuestionServiceGRPCClient",
    "RateLimitConfig",
    "RerankingClient",
    "ResilientServiceClient",
    "ResourceNotFoundError",
    "Retry",
    "RetryConfig",
    "RetrySpec",
    "RetryStrategy",
    "ServiceClientConfig",
    "ServiceClientFactory",
    "ServiceError",
    "ServiceIntegrationClient",
    "ServiceIntegrationClientSync",
    "ServiceTimeoutError",
    "ServiceUnavailable",
    "ServiceUnavailableError",
    "SlidingWindow",
    "StatusRegistry",
    "Timeout",
    "TimeoutConfig",
    "TokenBucket",
    "UserServiceClient",
    "UserServiceGRPCClient",
    "ValidationError",
    "__version__",
    "build_pipeline",
    "discover_all",
    "discover_all_async",
    "discover_service",
    "discover_service_async",
    "is_retryable",
    "orchestrator_service",
]

# The clients' names, and the module each comes from, loaded on first use.
_CLIENTS = {
    "AsyncHTTPClient": "servicegrid.clients.enhanced",
    "ConnectionPoolConfig": "servicegrid.clients.enhanced",
    "EnhancedHTTPClient": "servicegrid.clients.enhanced",
    "RetryConfig": "servicegrid.clients.enhanced",
    "TimeoutConfig": "servicegrid.clients.enhanced",
    "EmbeddingClient": "servicegrid.clients.embedding",
    "RerankingClient": "servicegrid.clients.reranking",
    "HealthChecker": "servicegrid.clients.health",
    "HealthStatus": "servicegrid.clients.health",
    "ResilientServiceClient": "servicegrid.clients.resilient",
    "ServiceClientConfig": "servicegrid.clients.grpc_config",
    "ServiceClientFactory": "servicegrid.clients.factory",
    "UserServiceClient": "servicegrid.clients.users",
    "UserServiceGRPCClient": "servicegrid.clients.users",
    "QuestionServiceClient": "servicegrid.clients.questions",
    "QuestionServiceGRPCClient": "servicegrid.clients.questions",
    "APIGatewayClient": "servicegrid.clients.api_gateway",
    "APIGatewayGRPCClient": "servicegrid.clients.api_gateway",
    "ServiceIntegrationClient": "servicegrid.clients.integration",
    "ServiceIntegrationClientSync": "servicegrid.clients.integration",
    # the retrieval orchestrator (the retrieval extra)
    "OrchestratorService": "servicegrid.retrieval.orchestrator",
    "orchestrator_service": "servicegrid.retrieval.orchestrator",
    "OrchestrationRequest": "servicegrid.retrieval.models",
    "OrchestrationResponse": "servicegrid.retrieval.models",
    "Discovery": "servicegrid.discovery",
    "discover_all": "servicegrid.discovery",
    "discover_all_async": "servicegrid.discovery",
    "discover_service": "servicegrid.discovery",
    "discover_service_async": "servicegrid.discovery",
    "DistributedLLMClient": "servicegrid.llm",
    "LLMHost": "servicegrid.llm",
    "LoadBalancingStrategy": "servicegrid.llm",
    # seed 004's local embeddings (the models extra)
    "LocalEmbeddingModel": "servicegrid.models.local",
    "LocalEmbeddingConfig": "servicegrid.models.local",
    "ModelBackend": "servicegrid.models.local",
    # seed 004's services
    "ProductionEmbeddingService": "servicegrid.embeddings",
    "EmbeddingResult": "servicegrid.embeddings",
    "ProductionLLMService": "servicegrid.llm.service",
    "LLMRequest": "servicegrid.llm.service",
    "LLMResponse": "servicegrid.llm.service",
}


__getattr__ = lazy_exports(__name__, _CLIENTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_CLIENTS))
