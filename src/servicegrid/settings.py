"""The one place configuration is read from the environment.

Every value comes through pydantic-settings: the seed environment variable
names (``GPU_SERVICE_URL``, ``EMBEDDING_SERVICE_TIMEOUT``, ``CONSUL_HOST``,
``CHROMA_SERVER_URL``, ...) are read as they are, case-insensitively, and
servicegrid's own knobs carry the ``SERVICEGRID_`` prefix. An empty variable
counts as unset.

Services are named by :mod:`servicegrid.catalogue`: the gRPC model services'
addresses and timeouts come from their ``<PREFIX>_URL``/``<PREFIX>_TIMEOUT``
variables (:attr:`Settings.grpc_services`, keyed by catalogue name). Other
HTTP services are found in the environment by name: every
``<NAME>_SERVER_URL`` (``CHROMA_SERVER_URL`` -> ``chroma``), every
``<NAME>_SERVICE_URL`` whose value is an http(s) URL, and the URL variable of
every catalogue HTTP service (``USER_SERVICE_URL`` -> ``users``,
``API_GATEWAY_URL`` -> ``api-gateway``) become entries of
:attr:`Settings.http_services`.

Use :func:`load_settings`: it raises :class:`ConfigurationError`, whose
message names each bad environment variable on its own line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from servicegrid import catalogue
from servicegrid._settings_errors import format_errors
from servicegrid._settings_sources import (
    GRPC_SERVICE_ENV,
    HttpServicesSource,
    http_service_name,
)
from servicegrid._settings_values import (
    CommaList,
    Count,
    Device,
    DiscoveryOrder,
    GrpcTarget,
    HostName,
    HostPort,
    HttpUrl,
    ModelRuntime,
    Port,
    Seconds,
    log_level,
)

__all__ = [
    "GRPC_SERVICE_ENV",
    "ApiKeyGrant",
    "ConfigurationError",
    "HttpServicesSource",
    "Settings",
    "http_service_name",
    "load_settings",
]


class ConfigurationError(ValueError):
    """The configuration is invalid; the message has one ``VARIABLE: reason`` line per problem."""


_MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class StandInDeviceSpec(BaseModel):
    """One fake device of the NVML stand-in (``SERVICEGRID_NVML_STANDIN_DEVICES``, JSON list)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    memory_mb: Count
    compute_capability: str = Field("8.9", pattern=r"^[0-9]+\.[0-9]+$")


class ApiKeyGrant(BaseModel):
    """What one API key of the API gateway service may do (``API_GATEWAY_KEYS``, JSON object
    of key -> grant): whose it is, and the ``resource:action`` rules it is allowed
    (``questions:read``, ``users:*``, ``*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principal: str = Field(min_length=1, max_length=200)
    allow: tuple[str, ...] = ("*",)


# -- the settings ------------------------------------------------------------

_GPU, _EMBEDDING, _RERANKING, _DOCUMENTS = catalogue.grpc_services()


class Settings(BaseSettings):
    """All of servicegrid's configuration; immutable once loaded. Durations are seconds."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        env_ignore_empty=True,
        frozen=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        validate_default=True,
    )

    # gRPC model services (seed 000); defaults from the catalogue
    gpu_service_url: GrpcTarget = _GPU.default_address
    embedding_service_url: GrpcTarget = _EMBEDDING.default_address
    reranking_service_url: GrpcTarget = _RERANKING.default_address
    docling_vlm_service_url: GrpcTarget = _DOCUMENTS.default_address
    gpu_service_timeout: Seconds = _GPU.timeout
    embedding_service_timeout: Seconds = _EMBEDDING.timeout
    reranking_service_timeout: Seconds = _RERANKING.timeout
    docling_vlm_service_timeout: Seconds = _DOCUMENTS.timeout

    # resilience defaults (seed 000)
    circuit_breaker_threshold: Annotated[int, Field(ge=1)] = 5
    circuit_breaker_timeout: Seconds = 60.0
    max_retry_attempts: Annotated[int, Field(ge=1)] = 3
    retry_base_delay: Annotated[float, Field(ge=0)] = 1.0
    retry_max_delay: Annotated[float, Field(ge=0)] = 60.0

    # discovery (seed 002): each backend is asked only when configured; env always
    consul_host: HostName | None = None
    consul_port: Port = 8500
    consul_token: str | None = Field(None, validation_alias="CONSUL_HTTP_TOKEN")
    etcd_host: HostName | None = None
    etcd_port: Port = 2379
    etcd_prefix: str = Field(
        "/servicegrid/services/", pattern=r"^/.*/$", validation_alias="SERVICEGRID_ETCD_PREFIX"
    )
    use_istio_dns: bool = False
    k8s_namespace: str = Field(
        "default",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        validation_alias="SERVICEGRID_K8S_NAMESPACE",
    )
    dns_server: HostPort | None = Field(None, validation_alias="SERVICEGRID_DNS_SERVER")
    discovery_order: DiscoveryOrder = Field(
        ("consul", "etcd", "dns", "env"), validation_alias="SERVICEGRID_DISCOVERY_ORDER"
    )
    discovery_ttl: Seconds = Field(30.0, validation_alias="SERVICEGRID_DISCOVERY_TTL")
    discovery_max_stale: Annotated[float, Field(ge=0)] = Field(
        300.0, validation_alias="SERVICEGRID_DISCOVERY_MAX_STALE"
    )
    discovery_timeout: Seconds = Field(2.0, validation_alias="SERVICEGRID_DISCOVERY_TIMEOUT")
    discovery_names: dict[str, str] = Field(
        default_factory=dict, validation_alias="SERVICEGRID_DISCOVERY_NAMES"
    )
    advertise_address: HostName | None = Field(
        None, validation_alias="SERVICEGRID_ADVERTISE_ADDRESS"
    )
    # seed 002's <NAME>_GRPC_TARGET variables, keyed by their prefix (USER_SERVICE)
    grpc_targets: dict[str, GrpcTarget] = Field(default_factory=dict)

    # stores (seed 002)
    qdrant_url: HttpUrl | None = None  # unset: Qdrant's local mode in qdrant_path
    elasticsearch_url: HttpUrl | None = None

    # HTTP services found by name (seeds 001, 002)
    http_services: dict[str, HttpUrl] = Field(default_factory=dict)

    # servicegrid's own knobs
    log_level: str = Field("INFO", validation_alias="SERVICEGRID_LOG_LEVEL")
    health_interval: Seconds = Field(10.0, validation_alias="SERVICEGRID_HEALTH_INTERVAL")
    status_timeout: Seconds = Field(2.0, validation_alias="SERVICEGRID_STATUS_TIMEOUT")

    # model services: where they run and how much they take on
    device: Device = Field("cuda", validation_alias="SERVICEGRID_DEVICE")
    embedding_model: str = Field(_MINILM, validation_alias="SERVICEGRID_EMBEDDING_MODEL")
    embedding_models: dict[str, str] = Field(
        default_factory=dict, validation_alias="SERVICEGRID_EMBEDDING_MODELS"
    )
    reranking_model: str = Field(_MINILM, validation_alias="SERVICEGRID_RERANKING_MODEL")
    reranking_models: dict[str, str] = Field(
        default_factory=dict, validation_alias="SERVICEGRID_RERANKING_MODELS"
    )
    # which runtime runs the models' forward pass: torch (sentence-transformers), ONNX
    # Runtime in fp32, or ONNX Runtime with dynamically quantized int8 weights (opt-in);
    # auto: ONNX Runtime fp32 on a CPU (measured faster), torch on a GPU
    embedding_backend: ModelRuntime = Field(
        "auto", validation_alias="SERVICEGRID_EMBEDDING_BACKEND"
    )
    reranking_backend: ModelRuntime = Field(
        "auto", validation_alias="SERVICEGRID_RERANKING_BACKEND"
    )
    # where models exported for ONNX Runtime (and their int8 versions) are kept and reused
    model_cache_dir: Path = Field(
        Path(".servicegrid/models"), validation_alias="SERVICEGRID_MODEL_CACHE_DIR"
    )
    # fetch a model named on the hub when it is neither local, cached nor packaged
    allow_download: bool = Field(False, validation_alias="SERVICEGRID_ALLOW_DOWNLOAD")
    max_batch_size: Count = Field(32, validation_alias="SERVICEGRID_MAX_BATCH_SIZE")
    max_batch_tokens: Count = Field(16_384, validation_alias="SERVICEGRID_MAX_BATCH_TOKENS")
    max_queue: Count = Field(4_096, validation_alias="SERVICEGRID_MAX_QUEUE")
    max_queue_tokens: Count = Field(1_048_576, validation_alias="SERVICEGRID_MAX_QUEUE_TOKENS")
    default_deadline: Seconds = Field(60.0, validation_alias="SERVICEGRID_DEFAULT_DEADLINE")
    calibrate: bool = Field(True, validation_alias="SERVICEGRID_CALIBRATE")
    forward_workers: Count | None = Field(None, validation_alias="SERVICEGRID_FORWARD_WORKERS")
    max_items_per_request: Count = Field(2_048, validation_alias="SERVICEGRID_MAX_ITEMS")
    max_text_chars: Count = Field(100_000, validation_alias="SERVICEGRID_MAX_TEXT_CHARS")
    embedding_cache_size: Annotated[int, Field(ge=0)] = Field(
        10_000, validation_alias="SERVICEGRID_EMBEDDING_CACHE_SIZE"
    )
    max_message_mb: Count = Field(64, validation_alias="SERVICEGRID_MAX_MESSAGE_MB")
    shutdown_grace: Seconds = Field(10.0, validation_alias="SERVICEGRID_SHUTDOWN_GRACE")

    # document processing (:50054)
    documents_engine: str = Field("text-layer", validation_alias="SERVICEGRID_DOCUMENTS_ENGINE")
    documents_workers: Count = Field(2, validation_alias="SERVICEGRID_DOCUMENTS_WORKERS")
    documents_max_mb: Count = Field(50, validation_alias="SERVICEGRID_DOCUMENTS_MAX_MB")
    documents_max_pages: Count = Field(500, validation_alias="SERVICEGRID_DOCUMENTS_MAX_PAGES")
    documents_timeout: Seconds = Field(120.0, validation_alias="SERVICEGRID_DOCUMENTS_TIMEOUT")
    documents_max_batch: Count = Field(32, validation_alias="SERVICEGRID_DOCUMENTS_MAX_BATCH")
    vlm_url: HttpUrl | None = Field(None, validation_alias="SERVICEGRID_VLM_URL")
    vlm_model: str = Field("gemma3-12b", validation_alias="SERVICEGRID_VLM_MODEL")
    vlm_api_key: str | None = Field(None, validation_alias="SERVICEGRID_VLM_API_KEY")

    # GPU management: where NVML comes from, and the tenant leases
    nvml: Literal["nvml", "standin"] = Field("nvml", validation_alias="SERVICEGRID_NVML")
    nvml_standin_devices: list[StandInDeviceSpec] = Field(
        default_factory=list, validation_alias="SERVICEGRID_NVML_STANDIN_DEVICES"
    )
    gpu_lease_db: str = Field(
        ".servicegrid/gpu-leases.sqlite3", validation_alias="SERVICEGRID_GPU_LEASE_DB"
    )
    gpu_lease_seconds: Seconds = Field(3600.0, validation_alias="SERVICEGRID_GPU_LEASE_SECONDS")
    gpu_max_lease_seconds: Seconds = Field(
        86_400.0, validation_alias="SERVICEGRID_GPU_MAX_LEASE_SECONDS"
    )
    gpu_sweep_interval: Seconds = Field(30.0, validation_alias="SERVICEGRID_GPU_SWEEP_INTERVAL")
    gpu_tenants: list[str] = Field(default_factory=list, validation_alias="SERVICEGRID_GPU_TENANTS")
    gpu_tenant_quotas_mb: dict[str, Count] = Field(
        default_factory=dict, validation_alias="SERVICEGRID_GPU_TENANT_QUOTAS_MB"
    )
    gpu_default_quota_mb: Count | None = Field(
        None, validation_alias="SERVICEGRID_GPU_DEFAULT_QUOTA_MB"
    )

    # service integration (:8005, seed 003): DATABASE_URL is SQLite by default, PostgreSQL for
    # several workers sharing the load (postgresql://... works as is)
    integration_service_url: HttpUrl = catalogue.lookup("integration").default_address
    database_url: str = Field(
        "sqlite+aiosqlite:///.servicegrid/integration.db", validation_alias="DATABASE_URL"
    )
    integration_executor_id: str | None = Field(
        None, validation_alias="SERVICEGRID_INTEGRATION_EXECUTOR_ID"
    )
    integration_max_body_mb: Count = Field(
        10, validation_alias="SERVICEGRID_INTEGRATION_MAX_BODY_MB"
    )
    # PostgreSQL: a worker silent this long has its unfinished executions taken over
    worker_timeout: Seconds = Field(15.0, validation_alias="SERVICEGRID_WORKER_TIMEOUT")
    # finished executions older than this many days are purged; 0 keeps them forever
    execution_retention_days: Annotated[float, Field(ge=0)] = Field(
        30.0, validation_alias="SERVICEGRID_EXECUTION_RETENTION_DAYS"
    )

    # the gateway (:8000): keys, limits, and the LLM hosts its chat endpoint fronts
    api_keys: CommaList = Field((), validation_alias="SERVICEGRID_API_KEYS")
    rate_limit_rps: Annotated[float, Field(gt=0)] | None = Field(
        None, validation_alias="SERVICEGRID_RATE_LIMIT_RPS"
    )
    rate_limit_burst: Count | None = Field(None, validation_alias="SERVICEGRID_RATE_LIMIT_BURST")
    gateway_max_body_mb: Count = Field(16, validation_alias="SERVICEGRID_GATEWAY_MAX_BODY_MB")
    llm_urls: CommaList = Field((), validation_alias="SERVICEGRID_LLM_URLS")
    llm_model: str | None = Field(None, validation_alias="SERVICEGRID_LLM_MODEL")
    llm_service: str | None = Field(None, validation_alias="SERVICEGRID_LLM_SERVICE")
    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    document_job_ttl: Seconds = Field(3600.0, validation_alias="SERVICEGRID_DOCUMENT_JOB_TTL")

    # the retrieval orchestrator (gateway): where the index lives and how it ranks
    qdrant_path: str = Field(".servicegrid/qdrant", validation_alias="SERVICEGRID_QDRANT_PATH")
    qdrant_api_key: str | None = Field(None, validation_alias="QDRANT_API_KEY")
    retrieval_collection: str = Field(
        "servicegrid_chunks",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        validation_alias="SERVICEGRID_RETRIEVAL_COLLECTION",
    )
    retrieval_candidates: Count = Field(20, validation_alias="SERVICEGRID_RETRIEVAL_CANDIDATES")
    retrieval_fusion: Literal["rrf", "relative"] = Field(
        "rrf", validation_alias="SERVICEGRID_RETRIEVAL_FUSION"
    )
    retrieval_dense_weight: float = Field(
        1.0, gt=0, validation_alias="SERVICEGRID_RETRIEVAL_DENSE_WEIGHT"
    )
    retrieval_rerank: bool = Field(True, validation_alias="SERVICEGRID_RETRIEVAL_RERANK")
    retrieval_rerank_model: str = Field("", validation_alias="SERVICEGRID_RETRIEVAL_RERANK_MODEL")

    # seed 002's users (:8001, :50061) and questions (:8002, :50062): SQLite by default,
    # PostgreSQL (postgresql://...) for replicas sharing one database; sample data on first start
    user_service_database_url: str = Field(
        "sqlite+aiosqlite:///.servicegrid/users.db", validation_alias="USER_SERVICE_DATABASE_URL"
    )
    question_service_database_url: str = Field(
        "sqlite+aiosqlite:///.servicegrid/questions.db",
        validation_alias="QUESTION_SERVICE_DATABASE_URL",
    )
    sample_data: bool = Field(True, validation_alias="SERVICEGRID_SAMPLE_DATA")
    # seed 002's API gateway (:8003, :50063): its keys, its limiter, what it may proxy to
    api_gateway_keys: dict[str, ApiKeyGrant] = Field(
        default_factory=dict, validation_alias="API_GATEWAY_KEYS"
    )
    api_gateway_rate_limit_rps: Annotated[float, Field(gt=0)] = Field(
        10.0, validation_alias="API_GATEWAY_RATE_LIMIT_RPS"
    )
    api_gateway_rate_limit_burst: Count = Field(20, validation_alias="API_GATEWAY_RATE_LIMIT_BURST")
    api_gateway_proxy_services: CommaList = Field((), validation_alias="API_GATEWAY_PROXY_SERVICES")
    api_gateway_proxy_timeout: Seconds = Field(30.0, validation_alias="API_GATEWAY_PROXY_TIMEOUT")

    @field_validator("retry_max_delay")
    @classmethod
    def _max_delay_not_below_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("retry_base_delay")
        if base is not None and value < base:
            raise ValueError(f"must be >= RETRY_BASE_DELAY ({base})")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        return log_level(value)

    @field_validator("http_services")
    @classmethod
    def _readable_service_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {(http_service_name(key) or key): url for key, url in value.items()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            HttpServicesSource(settings_cls, env_settings),
            dotenv_settings,
            file_secret_settings,
        )

    @property
    def grpc_services(self) -> dict[str, tuple[str, float]]:
        """Catalogue name -> (target, timeout seconds) of each gRPC model service, in order."""
        return {
            spec.name: (
                getattr(self, f"{spec.env_prefix.lower()}_url"),
                getattr(self, f"{spec.env_prefix.lower()}_timeout"),
            )
            for spec in catalogue.grpc_services()
        }

    def address_of(self, name: str) -> str:
        """Where the catalogue service ``name`` (or an alias) is: a gRPC target or an HTTP URL."""
        spec = catalogue.lookup(name)
        if spec.is_grpc:
            return self.grpc_services[spec.name][0]
        if spec.name == "integration":
            return self.integration_service_url
        return self.http_services.get(spec.name, spec.default_address)

    @property
    def log_level_number(self) -> int:
        """``log_level`` as a :mod:`logging` level number."""
        return logging.getLevelNamesMapping()[self.log_level]


def _unparsable(exc: SettingsError) -> str:
    """pydantic-settings names the field of a value that is not JSON; name its variable."""
    match = re.search(r'field "(\w+)"', str(exc))
    field_info = Settings.model_fields.get(match[1]) if match else None
    alias = field_info.validation_alias if field_info is not None else None
    if not isinstance(alias, str):
        return str(exc)
    return f"{alias}: not valid JSON ({exc.__cause__ or exc})"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; keyword ``overrides`` (by field name) win over it.

    Raises :class:`ConfigurationError` naming each bad environment variable.
    """
    try:
        return Settings(**overrides)
    except PydanticValidationError as exc:
        raise ConfigurationError(format_errors(exc)) from exc
    except SettingsError as exc:
        raise ConfigurationError(_unparsable(exc)) from exc
