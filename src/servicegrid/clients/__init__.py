"""Clients: the resilient HTTP clients (and, later, the typed gRPC clients)."""

from servicegrid.clients.enhanced import (
    AsyncHTTPClient,
    ClientState,
    ConnectionPoolConfig,
    EnhancedHTTPClient,
    RetryConfig,
    TimeoutConfig,
)
from servicegrid.clients.resilient import PRESETS, ResilientServiceClient, ServiceResponse

__all__ = [
    "PRESETS",
    "AsyncHTTPClient",
    "ClientState",
    "ConnectionPoolConfig",
    "EnhancedHTTPClient",
    "ResilientServiceClient",
    "RetryConfig",
    "ServiceResponse",
    "TimeoutConfig",
]
