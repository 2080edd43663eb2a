"""The one service catalogue: names, lookups, and everything that reads it agreeing with it."""

from __future__ import annotations

import pytest

from servicegrid import catalogue
from servicegrid.cli._serve import DEFAULT_PORTS, LocalService, port_for
from servicegrid.clients import ServiceClientConfig
from servicegrid.settings import GRPC_SERVICE_ENV, load_settings


def test_every_name_is_unique_and_found_by_each_of_its_names() -> None:
    seen: dict[str, str] = {}
    for spec in catalogue.CATALOGUE:
        for name in spec.names():
            assert name.lower() not in seen, f"{name} names {seen.get(name.lower())} too"
            assert spec.names()[0] == spec.name
            seen[name.lower()] = spec.name
            assert catalogue.lookup(name) is spec
    assert catalogue.lookup("gpu-management").name == "gpu"
    assert catalogue.lookup("DOCLING_VLM_SERVICE").name == "documents"
    assert catalogue.lookup("user-service").name == "users"
    with pytest.raises(KeyError, match="known: gpu, embedding"):
        catalogue.lookup("nope")


def test_the_architecture_table() -> None:
    rows = {
        spec.name: (spec.discovery_name, spec.env_prefix, spec.port, spec.grpc_port)
        for spec in catalogue.CATALOGUE
    }
    assert rows == {
        "gpu": ("gpu-service", "GPU_SERVICE", 50051, None),
        "embedding": ("embedding-service", "EMBEDDING_SERVICE", 50052, None),
        "reranking": ("reranking-service", "RERANKING_SERVICE", 50053, None),
        "documents": ("docling-vlm-service", "DOCLING_VLM_SERVICE", 50054, None),
        "integration": ("integration-service", "INTEGRATION_SERVICE", 8005, None),
        "gateway": ("gateway", "GATEWAY", 8000, None),
        "users": ("user-service", "USER_SERVICE", 8001, 50061),
        "questions": ("question-service", "QUESTION_SERVICE", 8002, 50062),
        "api-gateway": ("api-gateway", "API_GATEWAY", 8003, 50063),
        "text-extraction": ("text-extraction-service", "TEXT_EXTRACTION_SERVICE", 8010, None),
        "sentiment-analysis": (
            "sentiment-analysis-service",
            "SENTIMENT_ANALYSIS_SERVICE",
            8011,
            None,
        ),
        "text-summarization": (
            "text-summarization-service",
            "TEXT_SUMMARIZATION_SERVICE",
            8012,
            None,
        ),
    }
    assert catalogue.lookup("embedding").metrics_port == 51052
    assert catalogue.lookup("integration").metrics_port is None


def test_serve_runs_exactly_the_servable_services_on_their_ports() -> None:
    servable = {spec.name for spec in catalogue.CATALOGUE if spec.servable}
    assert {service.value for service in LocalService} == servable
    settings = load_settings()
    for service in LocalService:
        assert DEFAULT_PORTS[service] == catalogue.lookup(service.value).port
        assert port_for(service, settings) == catalogue.lookup(service.value).port


def test_settings_read_the_catalogue() -> None:
    settings = load_settings()
    assert list(GRPC_SERVICE_ENV) == [spec.name for spec in catalogue.grpc_services()]
    for spec in catalogue.grpc_services():
        assert GRPC_SERVICE_ENV[spec.name] == (spec.url_var, spec.timeout_var)
        assert settings.grpc_services[spec.name] == (spec.default_address, spec.timeout)
        assert settings.address_of(spec.name) == spec.default_address
    assert settings.address_of("integration") == "http://localhost:8005/api"


def test_client_configs_come_by_name_or_alias() -> None:
    settings = load_settings()
    by_alias = ServiceClientConfig.from_settings(settings, "docling-vlm")
    by_name = ServiceClientConfig.from_settings(settings, "documents")
    assert by_alias == by_name
    assert (by_name.service_url, by_name.timeout) == ("localhost:50054", 300.0)
    with pytest.raises(ValueError, match="unknown service"):
        ServiceClientConfig.from_settings(settings, "integration")
