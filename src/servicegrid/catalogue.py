"""Every service servicegrid knows, named once.

Settings, ``servicegrid serve``, ``up`` and ``status``, the clients and discovery
all read this table; nothing else spells a service's port or variable names.

.. code-block:: text

    service                 name         discovery name        env prefix           ports
    GPU management          gpu          gpu-service           GPU_SERVICE          50051 gRPC
    embedding               embedding    embedding-service     EMBEDDING_SERVICE    50052 gRPC
    reranking               reranking    reranking-service     RERANKING_SERVICE    50053 gRPC
    documents (Docling VLM) documents    docling-vlm-service   DOCLING_VLM_SERVICE  50054 gRPC
    service integration     integration  integration-service   INTEGRATION_SERVICE  8005 REST /api
    gateway                 gateway      gateway               GATEWAY              8000 REST
    users (seed 002)        users        user-service          USER_SERVICE         8001, 50061 gRPC
    questions (seed 002)    questions    question-service      QUESTION_SERVICE     8002, 50062 gRPC
    API gateway (seed 002)  api-gateway  api-gateway           API_GATEWAY          8003, 50063 gRPC

    samples (REST /api)     text-extraction 8010, sentiment-analysis 8011,
                            text-summarization 8012; discovery name <name>-service,
                            env prefix TEXT_EXTRACTION_SERVICE (and so on)

The samples are the action services seed 003's example registers; they compute their answers
from their input (:mod:`servicegrid.apps.sample_actions`).

The discovery name is the lower kebab case of the environment prefix; a
service with both protocols is also registered as ``<discovery name>-grpc``.
A gRPC service serves Prometheus metrics on its port + 1000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["CATALOGUE", "ServiceSpec", "WireProtocol", "grpc_services", "lookup"]

WireProtocol = Literal["grpc", "http"]

METRICS_PORT_OFFSET: Final = 1000


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: its names, protocol, default address and how its health is asked.

    ``port`` is the port of ``protocol``; ``grpc_port`` is a second, gRPC port for
    a REST service that serves both. ``timeout`` (seconds) is the default per-call
    timeout of its clients. ``grpc_service`` is the full gRPC service name health
    checks ask about. ``extra`` is the install extra its server needs, and
    ``servable`` whether this version can run it (``servicegrid serve NAME``).
    """

    name: str
    title: str
    env_prefix: str
    protocol: WireProtocol
    port: int
    timeout: float = 30.0
    grpc_port: int | None = None
    grpc_service: str = ""
    base_path: str = ""
    extra: str | None = None
    servable: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def discovery_name(self) -> str:
        """Its name in Consul, etcd and Kubernetes: its env prefix in lower kebab case."""
        return self.env_prefix.lower().replace("_", "-")

    @property
    def url_var(self) -> str:
        """The environment variable with its address: ``EMBEDDING_SERVICE_URL``."""
        return f"{self.env_prefix}_URL"

    @property
    def timeout_var(self) -> str:
        """The environment variable with its clients' timeout: ``EMBEDDING_SERVICE_TIMEOUT``."""
        return f"{self.env_prefix}_TIMEOUT"

    @property
    def is_grpc(self) -> bool:
        return self.protocol == "grpc"

    @property
    def metrics_port(self) -> int | None:
        """Where a gRPC service serves Prometheus metrics: its port + 1000."""
        return self.port + METRICS_PORT_OFFSET if self.is_grpc else None

    @property
    def default_address(self) -> str:
        """``localhost:50052`` for a gRPC service, ``http://localhost:8005/api`` for a REST one."""
        if self.is_grpc:
            return f"localhost:{self.port}"
        return f"http://localhost:{self.port}{self.base_path}"

    def names(self) -> tuple[str, ...]:
        """Every name this service answers to, its own first, each once (in any case)."""
        unique: dict[str, str] = {}
        for name in (self.name, self.discovery_name, self.env_prefix, *self.aliases):
            unique.setdefault(name.lower(), name)
        return tuple(unique.values())


CATALOGUE: Final[tuple[ServiceSpec, ...]] = (
    ServiceSpec(
        "gpu",
        "GPU management",
        "GPU_SERVICE",
        "grpc",
        50051,
        timeout=30.0,
        grpc_service="servicegrid.v1.GPUService",
        extra="gpu",
        servable=True,
        aliases=("gpu-management",),
    ),
    ServiceSpec(
        "embedding",
        "embedding",
        "EMBEDDING_SERVICE",
        "grpc",
        50052,
        timeout=60.0,
        grpc_service="servicegrid.v1.EmbeddingService",
        extra="models",
        servable=True,
    ),
    ServiceSpec(
        "reranking",
        "reranking",
        "RERANKING_SERVICE",
        "grpc",
        50053,
        timeout=45.0,
        grpc_service="servicegrid.v1.RerankingService",
        extra="models",
        servable=True,
    ),
    ServiceSpec(
        "documents",
        "documents (Docling VLM)",
        "DOCLING_VLM_SERVICE",
        "grpc",
        50054,
        timeout=300.0,
        grpc_service="servicegrid.v1.DoclingVLMService",
        extra="documents",
        servable=True,
        aliases=("docling-vlm", "docling_vlm"),
    ),
    ServiceSpec(
        "integration",
        "service integration",
        "INTEGRATION_SERVICE",
        "http",
        8005,
        base_path="/api",
        extra="integration",
        servable=True,
        aliases=("service-integration",),
    ),
    ServiceSpec("gateway", "gateway", "GATEWAY", "http", 8000, extra="gateway", servable=True),
    ServiceSpec(
        "users", "users", "USER_SERVICE", "http", 8001, grpc_port=50061, extra="apps", servable=True
    ),
    ServiceSpec(
        "questions",
        "questions",
        "QUESTION_SERVICE",
        "http",
        8002,
        grpc_port=50062,
        extra="apps",
        servable=True,
    ),
    ServiceSpec(
        "api-gateway",
        "API gateway",
        "API_GATEWAY",
        "http",
        8003,
        grpc_port=50063,
        extra="apps",
        servable=True,
    ),
    *(
        ServiceSpec(
            name,
            f"{title} (sample)",
            f"{name.upper().replace('-', '_')}_SERVICE",
            "http",
            port,
            base_path="/api",
            extra="integration",
            servable=True,
        )
        for name, title, port in (
            ("text-extraction", "text extraction", 8010),
            ("sentiment-analysis", "sentiment analysis", 8011),
            ("text-summarization", "summarization", 8012),
        )
    ),
)

_BY_NAME: Final[dict[str, ServiceSpec]] = {
    alias.lower(): spec for spec in CATALOGUE for alias in spec.names()
}


def lookup(name: str) -> ServiceSpec:
    """The service called ``name``: its name, discovery name, env prefix or an alias.

    Raises KeyError listing the known names.
    """
    spec = _BY_NAME.get(name.strip().lower())
    if spec is None:
        known = ", ".join(spec.name for spec in CATALOGUE)
        raise KeyError(f"no service called {name!r}; known: {known}")
    return spec


def grpc_services() -> tuple[ServiceSpec, ...]:
    """The gRPC model services, in catalogue order."""
    return tuple(spec for spec in CATALOGUE if spec.is_grpc)
