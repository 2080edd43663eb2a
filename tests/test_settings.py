"""Settings: defaults, the seed environment variable names, HTTP service discovery, errors."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError as PydanticValidationError

from servicegrid.settings import (
    ConfigurationError,
    Settings,
    http_service_name,
    load_settings,
)


def _settings_vars() -> set[str]:
    names = {"HTTP_SERVICES", "API_GATEWAY_URL"}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else field_name.upper())
    return names


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the variables they set."""
    known = _settings_vars()
    for name in list(os.environ):
        if name.upper() in known or http_service_name(name):
            monkeypatch.delenv(name)


def test_defaults_match_the_seeds() -> None:
    s = load_settings()
    assert s.grpc_services == {
        "gpu": ("localhost:50051", 30.0),
        "embedding": ("localhost:50052", 60.0),
        "reranking": ("localhost:50053", 45.0),
        "documents": ("localhost:50054", 300.0),
    }
    assert list(s.grpc_services) == ["gpu", "embedding", "reranking", "documents"]
    assert (s.circuit_breaker_threshold, s.circuit_breaker_timeout) == (5, 60.0)
    assert (s.max_retry_attempts, s.retry_base_delay, s.retry_max_delay) == (3, 1.0, 60.0)
    assert (s.consul_host, s.consul_port, s.use_istio_dns) == (None, 8500, False)
    assert (s.etcd_host, s.etcd_port) == (None, 2379)
    assert s.discovery_order == ("consul", "etcd", "dns", "env")
    assert (s.discovery_ttl, s.discovery_max_stale, s.discovery_timeout) == (30.0, 300.0, 2.0)
    assert s.grpc_targets == {}
    assert s.qdrant_url is None
    assert s.qdrant_path == ".servicegrid/qdrant"
    assert s.elasticsearch_url is None
    assert s.http_services == {}
    assert (s.log_level, s.health_interval, s.status_timeout) == ("INFO", 10.0, 2.0)
    assert s.forward_workers is None  # automatic: see servicegrid.models.forward_workers_for
    assert (s.nvml, s.gpu_tenants, s.gpu_default_quota_mb) == ("nvml", [], None)


@pytest.mark.parametrize(
    ("env_var", "raw", "field", "expected"),
    [
        ("GPU_SERVICE_URL", "gpu.internal:6000", "gpu_service_url", "gpu.internal:6000"),
        ("EMBEDDING_SERVICE_URL", "10.0.0.5:50052", "embedding_service_url", "10.0.0.5:50052"),
        ("RERANKING_SERVICE_URL", "[::1]:50053", "reranking_service_url", "[::1]:50053"),
        ("DOCLING_VLM_SERVICE_URL", "docling:1", "docling_vlm_service_url", "docling:1"),
        ("GPU_SERVICE_TIMEOUT", "12.5", "gpu_service_timeout", 12.5),
        ("EMBEDDING_SERVICE_TIMEOUT", "6", "embedding_service_timeout", 6.0),
        ("RERANKING_SERVICE_TIMEOUT", "4.5", "reranking_service_timeout", 4.5),
        ("DOCLING_VLM_SERVICE_TIMEOUT", "600", "docling_vlm_service_timeout", 600.0),
        ("CIRCUIT_BREAKER_THRESHOLD", "7", "circuit_breaker_threshold", 7),
        ("CIRCUIT_BREAKER_TIMEOUT", "90", "circuit_breaker_timeout", 90.0),
        ("MAX_RETRY_ATTEMPTS", "5", "max_retry_attempts", 5),
        ("RETRY_BASE_DELAY", "0", "retry_base_delay", 0.0),
        ("RETRY_MAX_DELAY", "30", "retry_max_delay", 30.0),
        ("CONSUL_HOST", "consul.service", "consul_host", "consul.service"),
        ("CONSUL_PORT", "8501", "consul_port", 8501),
        ("USE_ISTIO_DNS", "true", "use_istio_dns", True),
        ("ETCD_HOST", "etcd", "etcd_host", "etcd"),
        ("ETCD_PORT", "2380", "etcd_port", 2380),
        ("QDRANT_URL", "https://qdrant:6333/", "qdrant_url", "https://qdrant:6333"),
        ("ELASTICSEARCH_URL", "http://es:9200", "elasticsearch_url", "http://es:9200"),
        ("SERVICEGRID_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("SERVICEGRID_HEALTH_INTERVAL", "2.5", "health_interval", 2.5),
        ("SERVICEGRID_STATUS_TIMEOUT", "0.5", "status_timeout", 0.5),
        ("SERVICEGRID_FORWARD_WORKERS", "3", "forward_workers", 3),
        ("SERVICEGRID_NVML", "standin", "nvml", "standin"),
        ("SERVICEGRID_GPU_TENANTS", '["acme", "globex"]', "gpu_tenants", ["acme", "globex"]),
        (
            "SERVICEGRID_GPU_TENANT_QUOTAS_MB",
            '{"acme": 4096}',
            "gpu_tenant_quotas_mb",
            {"acme": 4096},
        ),
        ("SERVICEGRID_GPU_DEFAULT_QUOTA_MB", "2048", "gpu_default_quota_mb", 2048),
        ("SERVICEGRID_GPU_LEASE_SECONDS", "60", "gpu_lease_seconds", 60.0),
        ("SERVICEGRID_GPU_LEASE_DB", "/var/lib/leases.db", "gpu_lease_db", "/var/lib/leases.db"),
    ],
)
def test_each_seed_variable_is_honoured(
    monkeypatch: pytest.MonkeyPatch, env_var: str, raw: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(env_var, raw)
    assert getattr(load_settings(), field) == expected


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("embedding_service_url", "emb:9")
    monkeypatch.setenv("servicegrid_status_timeout", "3")
    s = load_settings()
    assert (s.embedding_service_url, s.status_timeout) == ("emb:9", 3.0)


def test_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_SERVICE_TIMEOUT", "")
    monkeypatch.setenv("CHROMA_SERVER_URL", "")
    s = load_settings()
    assert s.gpu_service_timeout == 30.0
    assert s.http_services == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("grpc://embedding:50052", "embedding:50052"),
        ("grpc://embedding:50052/", "embedding:50052"),
        ("dns:///embedding.svc.cluster.local:50052", "dns:///embedding.svc.cluster.local:50052"),
        ("dns://8.8.8.8/embedding:50052", "dns://8.8.8.8/embedding:50052"),
        ("unix:/run/servicegrid/embedding.sock", "unix:/run/servicegrid/embedding.sock"),
        ("ipv4:127.0.0.1:50052,127.0.0.2:50052", "ipv4:127.0.0.1:50052,127.0.0.2:50052"),
        ("  embedding:50052  ", "embedding:50052"),
    ],
)
def test_grpc_target_forms(monkeypatch: pytest.MonkeyPatch, raw: str, expected: str) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", raw)
    assert load_settings().grpc_services["embedding"][0] == expected


def test_http_services_are_discovered_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMA_SERVER_URL", "http://chroma:6003/")
    monkeypatch.setenv("FILESYSTEM_SERVER_URL", "http://fs:6004")
    monkeypatch.setenv("USER_SERVICE_URL", "http://localhost:8001")
    monkeypatch.setenv("QUESTION_SERVICE_URL", "https://questions.example.com/api")
    monkeypatch.setenv("API_GATEWAY_URL", "http://localhost:8003")
    # a *_SERVICE_URL that is not an http URL is some other kind of target: left alone
    monkeypatch.setenv("LEGACY_SERVICE_URL", "legacy:50099")
    # the gRPC targets are never HTTP services
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", "localhost:50052")
    s = load_settings()
    assert s.http_services == {
        "api-gateway": "http://localhost:8003",
        "chroma": "http://chroma:6003",
        "filesystem": "http://fs:6004",
        "questions": "https://questions.example.com/api",
        "users": "http://localhost:8001",
    }


def test_http_service_names() -> None:
    assert http_service_name("CHROMA_SERVER_URL") == "chroma"
    assert http_service_name("chroma_server_url") == "chroma"
    assert http_service_name("USER_SERVICE_URL") == "users"  # the catalogue's name
    assert http_service_name("BILLING_SERVICE_URL") == "billing-service"
    assert http_service_name("GATEWAY_URL") == "gateway"
    assert http_service_name("VECTOR_STORE_SERVER_URL") == "vector-store"
    assert http_service_name("API_GATEWAY_URL") == "api-gateway"
    for not_http in (
        "GPU_SERVICE_URL",
        "DOCLING_VLM_SERVICE_URL",
        "INTEGRATION_SERVICE_URL",
        "QDRANT_URL",
        "PATH",
    ):
        assert http_service_name(not_http) is None


def test_integration_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().database_url == "sqlite+aiosqlite:///.servicegrid/integration.db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://grid@db/grid")
    monkeypatch.setenv("INTEGRATION_SERVICE_URL", "http://integration:8005/api")
    settings = load_settings()
    assert settings.database_url == "postgresql://grid@db/grid"
    assert settings.integration_service_url == "http://integration:8005/api"
    assert settings.http_services == {}


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_SERVICE_TIMEOUT", "12")
    monkeypatch.setenv("CHROMA_SERVER_URL", "http://chroma:6003")
    s = load_settings(gpu_service_timeout=5, status_timeout=1.5, http_services={"x": "http://x:1"})
    assert s.gpu_service_timeout == 5.0
    assert s.status_timeout == 1.5
    assert s.http_services == {"chroma": "http://chroma:6003", "x": "http://x:1"}


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(PydanticValidationError):
        s.gpu_service_timeout = 1.0


def test_timeout_error_message_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_TIMEOUT", "-3")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(info.value) == (
        "EMBEDDING_SERVICE_TIMEOUT: Input should be greater than 0 (got '-3')"
    )
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("env_var", "raw"),
    [
        ("GPU_SERVICE_TIMEOUT", "thirty"),  # not a number
        ("RERANKING_SERVICE_TIMEOUT", "-1"),  # negative
        ("DOCLING_VLM_SERVICE_TIMEOUT", "0"),  # must be > 0
        ("GPU_SERVICE_URL", "localhost:70000"),  # port out of range
        ("EMBEDDING_SERVICE_URL", "localhost"),  # no port
        ("EMBEDDING_SERVICE_URL", "localhost:http"),  # port not a number
        ("RERANKING_SERVICE_URL", "http://reranking:50053"),  # an http URL is not a gRPC target
        ("CONSUL_PORT", "0"),
        ("ETCD_PORT", "65536"),
        ("CIRCUIT_BREAKER_THRESHOLD", "0"),
        ("CIRCUIT_BREAKER_TIMEOUT", "0"),
        ("MAX_RETRY_ATTEMPTS", "0"),
        ("RETRY_BASE_DELAY", "-1"),
        ("RETRY_MAX_DELAY", "0.5"),  # below RETRY_BASE_DELAY (1.0)
        ("USE_ISTIO_DNS", "maybe"),
        ("QDRANT_URL", "qdrant:6333"),  # no scheme
        ("ELASTICSEARCH_URL", "http://es:99999"),
        ("CHROMA_SERVER_URL", "ftp://chroma:6003"),  # bad scheme
        ("CHROMA_SERVER_URL", "http://"),  # no host
        ("USER_SERVICE_URL", "https://:8001"),  # no host
        ("SERVICEGRID_LOG_LEVEL", "loud"),
        ("SERVICEGRID_HEALTH_INTERVAL", "0"),
        ("SERVICEGRID_STATUS_TIMEOUT", "soon"),
        ("SERVICEGRID_FORWARD_WORKERS", "0"),
        ("SERVICEGRID_NVML", "cuda"),
        ("SERVICEGRID_GPU_LEASE_SECONDS", "0"),
        ("SERVICEGRID_MAX_QUEUE_TOKENS", "0"),
        ("SERVICEGRID_DEFAULT_DEADLINE", "-5"),
        ("SERVICEGRID_CALIBRATE", "sometimes"),
        ("SERVICEGRID_RETRIEVAL_FUSION", "mean"),
        ("SERVICEGRID_RETRIEVAL_DENSE_WEIGHT", "0"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env_var: str, raw: str
) -> None:
    monkeypatch.setenv(env_var, raw)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{env_var}: ")
    assert repr(raw) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("env_var", "raw", "expected"),
    [
        ("SERVICEGRID_GPU_TENANT_QUOTAS_MB", '{"acme": 0}', "[acme]: Input should be greater"),
        ("SERVICEGRID_NVML_STANDIN_DEVICES", '[{"name": "x"}]', "[0].memory_mb: Field required"),
        ("SERVICEGRID_GPU_TENANTS", "acme", "not valid JSON"),
    ],
)
def test_a_bad_json_value_names_the_place_inside_it(
    monkeypatch: pytest.MonkeyPatch, env_var: str, raw: str, expected: str
) -> None:
    monkeypatch.setenv(env_var, raw)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(info.value).startswith(f"{env_var}: {expected}")


def test_one_line_per_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_SERVICE_TIMEOUT", "abc")
    monkeypatch.setenv("CONSUL_PORT", "99999")
    monkeypatch.setenv("CHROMA_SERVER_URL", "ftp://chroma")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    lines = str(info.value).splitlines()
    assert sorted(line.split(":", 1)[0] for line in lines) == [
        "CHROMA_SERVER_URL",
        "CONSUL_PORT",
        "GPU_SERVICE_TIMEOUT",
    ]


def test_bad_override_is_named_like_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"^GPU_SERVICE_TIMEOUT: .*\(got -1\)$"):
        load_settings(gpu_service_timeout=-1)
