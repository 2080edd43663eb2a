"""Clients: the resilient HTTP clients and the typed async gRPC clients."""

from servicegrid.clients.api_gateway import APIGatewayClient, APIGatewayGRPCClient
from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.enhanced import (
    AsyncHTTPClient,
    ConnectionPoolConfig,
    EnhancedHTTPClient,
    RetryConfig,
    TimeoutConfig,
)
from servicegrid.clients.factory import (
    ServiceClientFactory,
    create_docling_vlm_client,
    create_embedding_client,
    create_gpu_client,
    create_reranking_client,
)
from servicegrid.clients.gpu import GPUClient
from servicegrid.clients.grpc_base import BaseServiceClient, GrpcServiceClient, ServiceClientConfig
from servicegrid.clients.health import HealthChecker, HealthStatus
from servicegrid.clients.integration import (
    INTEGRATION_RETRY_POLICIES,
    DeferredRead,
    OperationRetryPolicy,
    OperationType,
    ServiceIntegrationClient,
    ServiceIntegrationClientSync,
    WorkflowExecution,
)
from servicegrid.clients.questions import QuestionServiceClient, QuestionServiceGRPCClient
from servicegrid.clients.reranking import RerankingClient
from servicegrid.clients.resilient import PRESETS, ResilientServiceClient, ServiceResponse
from servicegrid.clients.state import ClientState
from servicegrid.clients.users import UserServiceClient, UserServiceGRPCClient

__all__ = [
    "INTEGRATION_RETRY_POLICIES",
    "PRESETS",
    "APIGatewayClient",
    "APIGatewayGRPCClient",
    "AsyncHTTPClient",
    "BaseServiceClient",
    "ClientState",
    "ConnectionPoolConfig",
    "DeferredRead",
    "DoclingVLMClient",
    "EmbeddingClient",
    "EnhancedHTTPClient",
    "GPUClient",
    "GrpcServiceClient",
    "HealthChecker",
    "HealthStatus",
    "OperationRetryPolicy",
    "OperationType",
    "QuestionServiceClient",
    "QuestionServiceGRPCClient",
    "RerankingClient",
    "ResilientServiceClient",
    "RetryConfig",
    "ServiceClientConfig",
    "ServiceClientFactory",
    "ServiceIntegrationClient",
    "ServiceIntegrationClientSync",
    "ServiceResponse",
    "TimeoutConfig",
    "UserServiceClient",
    "UserServiceGRPCClient",
    "WorkflowExecution",
    "create_docling_vlm_client",
    "create_embedding_client",
    "create_gpu_client",
    "create_reranking_client",
]
