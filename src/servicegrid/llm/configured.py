"""The LLM hosts the settings name: ``SERVICEGRID_LLM_URLS`` or ``SERVICEGRID_LLM_SERVICE``."""

from __future__ import annotations

from typing import Any

from servicegrid.llm.client import DistributedLLMClient
from servicegrid.llm.hosts import LLMHost
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.settings import Settings

__all__ = ["configured_llm", "llm_hosts"]


def llm_hosts(urls: tuple[str, ...] | list[str], api_key: str | None) -> list[LLMHost]:
    """A host per ``name=url`` or bare URL entry (named by its ``host:port``)."""
    hosts: list[LLMHost] = []
    for entry in urls:
        name, sep, url = entry.partition("=")
        if not sep or "://" in name:
            url, name = entry, LLMHost.from_url(entry).name
        hosts.append(LLMHost(name=name.strip(), url=url.strip(), api_key=api_key))
    return hosts


def configured_llm(
    settings: Settings,
    *,
    circuit_breaker: CircuitBreakerConfig | None = None,
    **client_options: Any,
) -> DistributedLLMClient | None:
    """A client over ``SERVICEGRID_LLM_URLS`` (``OPENAI_API_KEY`` sent to them), else over the
    instances of ``SERVICEGRID_LLM_SERVICE`` found through discovery, else None. Each host's
    breaker is ``circuit_breaker``, by default ``CIRCUIT_BREAKER_THRESHOLD`` and
    ``CIRCUIT_BREAKER_TIMEOUT``; ``client_options`` go to :class:`DistributedLLMClient`."""
    breaker = circuit_breaker or CircuitBreakerConfig(
        failure_threshold=settings.circuit_breaker_threshold,
        recovery_timeout=settings.circuit_breaker_timeout,
    )
    hosts = llm_hosts(settings.llm_urls, settings.openai_api_key)
    if hosts:
        return DistributedLLMClient(hosts=hosts, circuit_breaker=breaker, **client_options)
    if settings.llm_service:
        return DistributedLLMClient.from_discovery(
            settings.llm_service, circuit_breaker=breaker, **client_options
        )
    return None
