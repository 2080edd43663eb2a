"""A discovered service's health: every instance probed at once, each within a short timeout.

Discovery says where the instances are (and which backend knew); each is asked
through :func:`~servicegrid.transports.probe.probe_health`: a gRPC service by
its gRPC target (``grpc.health.v1``), an HTTP one by ``GET <url>/health``. The
service is healthy when some instance is; ``unknown`` when discovery could not
be asked (every backend failed).
"""

from __future__ import annotations

import asyncio
import logging

from servicegrid.apps.api_gateway.schemas import (
    InstanceHealthAnswer,
    ServiceHealthAnswer,
    service_name_problem,
)
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.base import Answer, Instance
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import (
    DiscoveryError,
    ResourceNotFoundError,
    ServiceError,
    UnknownServiceError,
    ValidationError,
)
from servicegrid.transports.probe import probe_health

__all__ = ["check_service_name", "probe_instance", "service_health"]

_log = logging.getLogger("servicegrid.apps.api_gateway")


def check_service_name(value: str, field: str = "service_name") -> str:
    """``value`` when it is a discovery name; else ValidationError naming ``field``."""
    problem = service_name_problem(value)
    if problem is not None:
        raise ValidationError.for_field(field, problem)
    return value


async def probe_instance(
    instance: Instance,
    answer: Answer,
    *,
    timeout: float,  # noqa: ASYNC109 - the probe's own deadline, passed on
    clock: Clock = SYSTEM_CLOCK,
) -> InstanceHealthAnswer:
    """Ask one instance whether it serves; never raises (a failure is its ``error``)."""
    target = instance.locator(answer.protocol)
    started = clock.now()
    error = ""
    try:
        # the probe keeps its own deadline; this bounds anything before it (DNS, a connect)
        async with asyncio.timeout(timeout):
            health = await probe_health(target, timeout=timeout)
        serving = health.serving
        if not serving:
            error = health.status
    except TimeoutError:
        serving, error = False, f"no answer within {timeout:g} s"
    except ServiceError as failure:
        serving, error = False, f"{type(failure).__name__}: {failure.message}"
    except Exception as failure:  # a probe reports what went wrong; it never fails the page
        serving, error = False, f"{type(failure).__name__}: {failure}"
    elapsed_ms = max(0.0, (clock.now() - started) * 1000.0)
    return InstanceHealthAnswer(
        address=instance.address,
        status="healthy" if serving else "unhealthy",
        response_time_ms=round(elapsed_ms, 3),
        error=error,
    )


async def service_health(
    discovery: Discovery,
    service: str,
    *,
    timeout: float,  # noqa: ASYNC109 - each probe's own deadline
    clock: Clock = SYSTEM_CLOCK,
) -> ServiceHealthAnswer:
    """Probe every instance of ``service`` concurrently, each within ``timeout`` seconds.

    Raises ValidationError (``service_name``) for a name that is not a discovery
    name and ResourceNotFoundError when no discovery backend knows it.
    """
    check_service_name(service)
    try:
        answer = await discovery.resolve(service)
    except UnknownServiceError:
        raise ResourceNotFoundError(
            f"service {service!r} is not known to discovery",
            resource_type="service",
            resource_id=service,
        ) from None
    except DiscoveryError as error:
        _log.warning("health of %s: discovery failed: %s", service, error.message)
        return ServiceHealthAnswer(service=service, status="unknown", instances=[], backend="")
    instances = await asyncio.gather(
        *(
            probe_instance(instance, answer, timeout=timeout, clock=clock)
            for instance in answer.instances
        )
    )
    healthy = any(instance.status == "healthy" for instance in instances)
    backend = str(discovery.metadata(answer).get("backend", answer.backend))
    return ServiceHealthAnswer(
        service=service,
        status="healthy" if healthy else "unhealthy",
        instances=list(instances),
        backend=backend,
    )
