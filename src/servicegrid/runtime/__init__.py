"""The shared gRPC server runtime: server bootstrap, interceptors, lifecycle, device policy.

.. code-block:: python

    device = resolve_device(settings_device)          # fails fast without a GPU
    running = await create_server("[::]:50052", services=[registration])
    await serve(running, grace=10.0)                  # until SIGTERM/SIGINT
"""

from servicegrid.runtime.context import (
    RequestContext,
    current_request_id,
    current_tenant,
    current_traceparent,
    get_request_id,
    request_scope,
)
from servicegrid.runtime.device import DeviceUnavailableError, gpu_memory_used_mb, resolve_device
from servicegrid.runtime.interceptors import (
    DeadlineInterceptor,
    ErrorMappingInterceptor,
    GrpcServerMetrics,
    InterceptorChain,
    LoggingInterceptor,
    MetricsInterceptor,
    RequestContextInterceptor,
    UnaryServerInterceptor,
    chained,
    default_interceptors,
    server_metrics,
)
from servicegrid.runtime.lifecycle import serve
from servicegrid.runtime.server import (
    HealthServicerHandle,
    RunningServer,
    ServerTLS,
    ServiceRegistration,
    create_server,
)

__all__ = [
    "DeadlineInterceptor",
    "DeviceUnavailableError",
    "ErrorMappingInterceptor",
    "GrpcServerMetrics",
    "HealthServicerHandle",
    "InterceptorChain",
    "LoggingInterceptor",
    "MetricsInterceptor",
    "RequestContext",
    "RequestContextInterceptor",
    "RunningServer",
    "ServerTLS",
    "ServiceRegistration",
    "UnaryServerInterceptor",
    "chained",
    "create_server",
    "current_request_id",
    "current_tenant",
    "current_traceparent",
    "default_interceptors",
    "get_request_id",
    "gpu_memory_used_mb",
    "request_scope",
    "resolve_device",
    "serve",
    "server_metrics",
]
