"""The Service Integration service (seed 003): a persisted registry of services and their actions.

``create_app(database_url)`` builds the FastAPI app served under ``/api`` (port 8005 by default).
"""

from servicegrid.integration.app import create_app
from servicegrid.integration.models import (
    DeregisterResult,
    HttpMethod,
    Service,
    ServiceAction,
    ServiceCreate,
    ServicePage,
    ServiceStatus,
    ServiceUpdate,
)
from servicegrid.integration.registry import ServiceRegistry

__all__ = [
    "DeregisterResult",
    "HttpMethod",
    "Service",
    "ServiceAction",
    "ServiceCreate",
    "ServicePage",
    "ServiceRegistry",
    "ServiceStatus",
    "ServiceUpdate",
    "create_app",
]
