"""The native step runner: one typed gRPC client per native service, made on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

from servicegrid.clients.grpc_base import GrpcServiceClient, ServiceClientConfig
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.integration.native.action import InputProblem, NativeAction
from servicegrid.integration.native.catalogue import (
    NATIVE_SERVICES,
    checked_input,
    input_problem_error,
    require_native_action,
)
from servicegrid.settings import Settings, load_settings
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

__all__ = ["NativeStepRunner"]

C = TypeVar("C", bound=GrpcServiceClient)


class NativeStepRunner:
    """Runs native actions through one typed client per service, created on first use.

    ``endpoints`` maps a native service name to a gRPC target (``"host:port"``) and
    replaces the URL settings give it; ``configs`` gives a whole ``ServiceClientConfig``
    instead. The rest comes from ``settings`` (default: :func:`load_settings`, read only
    if some service needs it): ``EMBEDDING_SERVICE_URL`` (localhost:50052),
    ``RERANKING_SERVICE_URL`` (localhost:50053), ``DOCLING_VLM_SERVICE_URL``
    (localhost:50054), their timeouts and the shared retry and breaker values. Settings
    are read here only, never while a step runs. Clients register in ``registry`` (None:
    not at all). Raises ValueError for an unknown service name or a bad endpoint.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str] | None = None,
        *,
        configs: Mapping[str, ServiceClientConfig] | None = None,
        settings: Settings | None = None,
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        endpoints = dict(endpoints or {})
        given = dict(configs or {})
        for label, names in (("endpoints", endpoints), ("configs", given)):
            unknown = sorted(set(names) - NATIVE_SERVICES)
            if unknown:
                raise ValueError(
                    f"{label}: unknown native service(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(NATIVE_SERVICES))}"
                )
        both = sorted(set(endpoints) & set(given))
        if both:
            raise ValueError(f"give endpoints or configs for a service, not both: {both}")
        self._configs: dict[str, ServiceClientConfig] = {}
        for service in sorted(NATIVE_SERVICES):
            if service in given:
                self._configs[service] = given[service]
                continue
            if settings is None:
                settings = load_settings()
            overrides = {"service_url": endpoints[service]} if service in endpoints else {}
            self._configs[service] = ServiceClientConfig.from_settings(
                settings, service, **overrides
            )
        self._registry = registry
        self._clock = clock
        self._clients: dict[str, GrpcServiceClient] = {}
        self._closed = False

    @property
    def configs(self) -> dict[str, ServiceClientConfig]:
        """The client config of each native service."""
        return dict(self._configs)

    async def run(
        self,
        service: str,
        action: str,
        input_data: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - seconds per attempt, as clients take
    ) -> dict[str, Any]:
        """Run ``service.action`` on ``input_data``; returns its JSON output.

        ``timeout`` (seconds) bounds each attempt; default the client's. Raises
        ResourceNotFoundError (unknown action), ValidationError (bad input) or the
        client's ServiceError; RuntimeError after :meth:`aclose`.
        """
        spec = require_native_action(service, action)
        return await self.run_action(spec, checked_input(spec, input_data), timeout=timeout)

    async def run_action(
        self,
        spec: NativeAction,
        input_data: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - seconds per attempt, as clients take
    ) -> dict[str, Any]:
        """Run ``spec`` on ``input_data`` already checked against its input schema.

        Raises ValidationError for what only the action's own check finds (a PDF that is not
        one), the client's ServiceError, or RuntimeError after :meth:`aclose`.
        """
        if self._closed:
            raise RuntimeError("NativeStepRunner is closed")
        try:
            return await spec.handler(self, input_data, timeout)
        except InputProblem as problem:  # the handler ran the action's own check
            raise input_problem_error(spec, problem) from None

    def client(self, service: str, kind: type[C], create: Callable[..., C]) -> C:
        """The ``kind`` client of ``service``: made by ``create`` on first use, then reused."""
        client = self._clients.get(service)
        if client is None:
            client = create(self._configs[service], registry=self._registry, clock=self._clock)
            self._clients[service] = client
        if not isinstance(client, kind):
            raise TypeError(f"the {service} client is a {type(client).__name__}, not a {kind}")
        return client

    async def aclose(self) -> None:
        """Close every client this runner opened; idempotent. Then :meth:`run` raises."""
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
