"""Server interceptors, one concern each; :func:`default_interceptors` lists them outermost first.

A ``grpc.aio`` interceptor only sees a call through the method handler it
returns, so each one here wraps the handler's unary-unary behavior and runs
:meth:`UnaryServerInterceptor.handle` around it. Streaming handlers pass
through untouched (servicegrid's services are all unary-unary).

Each grpc interceptor costs a handler lookup and a new method handler on every
call, so :func:`chained` merges adjacent :class:`UnaryServerInterceptor` s into
one :class:`InterceptorChain`, which looks the handler up once per call and
keeps the composed behavior per method. :func:`~servicegrid.runtime.create_server`
does that for any stack it is given.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar, cast
from weakref import WeakKeyDictionary

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ServiceError
from servicegrid.resilience.deadline import enter_deadline, exit_deadline
from servicegrid.runtime.context import (
    REQUEST_ID_KEY,
    RequestContext,
    current_request_id,
    request_scope,
)

__all__ = [
    "LATENCY_BUCKETS",
    "Behavior",
    "DeadlineInterceptor",
    "ErrorMappingInterceptor",
    "GrpcServerMetrics",
    "InterceptorChain",
    "LoggingInterceptor",
    "MetricsInterceptor",
    "RequestContextInterceptor",
    "ServicerContext",
    "UnaryServerInterceptor",
    "chained",
    "default_interceptors",
    "server_metrics",
    "split_method",
    "status_code_for",
]

_TRequest = TypeVar("_TRequest")
_TResponse = TypeVar("_TResponse")

ServicerContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Behavior: TypeAlias = Callable[[Any, ServicerContext], Awaitable[Any]]
"""A unary-unary method behavior: ``async (request, context) -> response``."""

_log = logging.getLogger(__name__)

# Model calls run from milliseconds to minutes (documents); the default buckets stop at 10 s.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def split_method(full_method: str) -> tuple[str, str]:
    """``/servicegrid.v1.EmbeddingService/GetHealth`` -> ``(service, method)``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or full_method


def status_code_for(error: ServiceError) -> grpc.StatusCode:
    """The status code a servicer aborts with for ``error`` (its ``grpc_code``; else UNKNOWN)."""
    try:
        return grpc.StatusCode[error.grpc_code]
    except KeyError:
        return grpc.StatusCode.UNKNOWN


def _status_name(context: ServicerContext, error: BaseException | None) -> str:
    """The status the call ended with, as the caller will see it."""
    if isinstance(error, asyncio.CancelledError):
        left = cast("float | None", context.time_remaining())
        return "DEADLINE_EXCEEDED" if left is not None and left <= 0 else "CANCELLED"
    code = cast("grpc.StatusCode | None", context.code())
    if code is not None:
        return code.name
    return "OK" if error is None else "UNKNOWN"


class InterceptorChain(grpc.aio.ServerInterceptor):
    """Runs ``layers`` (outermost first) around every unary-unary call, as one interceptor.

    The wrapped handler is built once per method and reused while the handler
    below stays the same object, so a call costs one lookup and the layers'
    own work.
    """

    def __init__(self, layers: Sequence[UnaryServerInterceptor]) -> None:
        self.layers = tuple(layers)
        self._wrapped: dict[str, tuple[object, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails],
            Awaitable[grpc.RpcMethodHandler[_TRequest, _TResponse] | None],
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_TRequest, _TResponse] | None:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.request_streaming
            or handler.response_streaming
            or handler.unary_unary is None
        ):
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._compose(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _compose(self, method: str, inner: Callable[..., Any]) -> Behavior:
        async def servicer(request: Any, context: ServicerContext) -> Any:
            result = inner(request, context)
            return await result if inspect.isawaitable(result) else result

        behavior: Behavior = servicer
        for layer in reversed(self.layers):
            behavior = functools.partial(layer.handle, method, behavior=behavior)
        return behavior


class UnaryServerInterceptor(grpc.aio.ServerInterceptor, abc.ABC):
    """Base class: runs :meth:`handle` around every unary-unary call.

    Usable alone as a grpc interceptor; :func:`chained` merges neighbours into one.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails],
            Awaitable[grpc.RpcMethodHandler[_TRequest, _TResponse] | None],
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_TRequest, _TResponse] | None:
        return await self._alone.intercept_service(continuation, handler_call_details)

    @functools.cached_property
    def _alone(self) -> InterceptorChain:
        """This interceptor as a chain of one, so its wrapped handlers are kept per method."""
        return InterceptorChain([self])

    @abc.abstractmethod
    async def handle(
        self, method: str, request: Any, context: ServicerContext, behavior: Behavior
    ) -> Any:
        """Run one call (``method`` is ``/package.Service/Method``); await ``behavior`` to go on."""


def chained(interceptors: Sequence[grpc.aio.ServerInterceptor]) -> list[grpc.aio.ServerInterceptor]:
    """``interceptors`` with each run of adjacent UnaryServerInterceptors merged into one chain."""
    merged: list[grpc.aio.ServerInterceptor] = []
    run: list[UnaryServerInterceptor] = []
    for interceptor in interceptors:
        if isinstance(interceptor, UnaryServerInterceptor):
            run.append(interceptor)
            continue
        if run:
            merged.append(InterceptorChain(run))
            run = []
        merged.append(interceptor)
    if run:
        merged.append(InterceptorChain(run))
    return merged


class RequestContextInterceptor(UnaryServerInterceptor):
    """Binds request id, traceparent and tenant for the call; echoes ``x-request-id``.

    The request id goes back as trailing metadata, which travels with the
    status, on errors too, and costs no extra send as initial metadata would.
    Trailers a servicer sets replace it; ErrorMappingInterceptor keeps it.
    """

    async def handle(
        self, method: str, request: Any, context: ServicerContext, behavior: Behavior
    ) -> Any:
        ctx = RequestContext.from_metadata(context.invocation_metadata())
        with request_scope(ctx):
            context.set_trailing_metadata(((REQUEST_ID_KEY, ctx.request_id),))
            return await behavior(request, context)


class ErrorMappingInterceptor(UnaryServerInterceptor):
    """Turns exceptions into statuses, through the error table in :mod:`servicegrid.errors`.

    A :class:`ServiceError` aborts with its ``grpc_code`` and message (plus a
    ``retry-after`` trailer in seconds when it has ``retry_after``). Any other
    exception is logged with its traceback and aborts as INTERNAL with a
    generic message naming the request id; NotImplementedError (the generated
    base servicer's) is UNIMPLEMENTED. ``context.abort`` passes through.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or _log

    async def handle(
        self, method: str, request: Any, context: ServicerContext, behavior: Behavior
    ) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except NotImplementedError:
            # what the generated base servicer raises for a method nobody implemented
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")
        except ServiceError as exc:
            trailers = tuple(context.trailing_metadata() or ())
            if exc.retry_after is not None:
                trailers += (("retry-after", f"{exc.retry_after:g}"),)
            await context.abort(status_code_for(exc), exc.message, trailers)
        except Exception:
            request_id = current_request_id()
            self._logger.exception("unhandled error in %s (request id %s)", method, request_id)
            suffix = f" (request id {request_id})" if request_id else ""
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error{suffix}")


class DeadlineInterceptor(UnaryServerInterceptor):
    """Refuses a call whose deadline has passed; publishes the rest to code below.

    The caller's remaining time becomes the deadline of
    :mod:`servicegrid.resilience.deadline` (``clock.now() + time_remaining``),
    so ``deadline.remaining()`` in the servicer sees the caller's budget.
    ``min_remaining`` (seconds, default 0) also refuses calls that arrive with
    no more than that left: too little to do the work.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, min_remaining: float = 0.0) -> None:
        if not min_remaining >= 0:
            raise ValueError(f"min_remaining must be >= 0, got {min_remaining!r}")
        self._clock = clock
        self._min_remaining = min_remaining

    async def handle(
        self, method: str, request: Any, context: ServicerContext, behavior: Behavior
    ) -> Any:
        left = cast("float | None", context.time_remaining())
        if left is None:
            return await behavior(request, context)
        if left <= self._min_remaining:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deadline exceeded: {left:.3f} s left when the call arrived",
            )
        token = enter_deadline(self._clock.now() + left)
        try:
            return await behavior(request, context)
        finally:
            exit_deadline(token)


@dataclass(frozen=True, slots=True)
class GrpcServerMetrics:
    """The server's Prometheus metrics on one registry; see :func:`server_metrics`."""

    requests: Counter
    latency: Histogram
    in_flight: Gauge


_metrics_by_registry: WeakKeyDictionary[CollectorRegistry, GrpcServerMetrics] = WeakKeyDictionary()
_metrics_lock = threading.Lock()


def server_metrics(registry: CollectorRegistry = REGISTRY) -> GrpcServerMetrics:
    """The metrics registered on ``registry``, created on first use and shared after.

    ``servicegrid_grpc_requests_total{service,method,code}``,
    ``servicegrid_grpc_request_seconds{service,method}`` (buckets up to 300 s) and
    ``servicegrid_grpc_in_flight{service,method}``.
    """
    with _metrics_lock:
        metrics = _metrics_by_registry.get(registry)
        if metrics is None:
            labels = ("service", "method")
            metrics = GrpcServerMetrics(
                requests=Counter(
                    "servicegrid_grpc_requests_total",
                    "gRPC calls handled, by status code",
                    (*labels, "code"),
                    registry=registry,
                ),
                latency=Histogram(
                    "servicegrid_grpc_request_seconds",
                    "Time to handle a gRPC call, in seconds",
                    labels,
                    buckets=LATENCY_BUCKETS,
                    registry=registry,
                ),
                in_flight=Gauge(
                    "servicegrid_grpc_in_flight",
                    "gRPC calls being handled now",
                    labels,
                    registry=registry,
                ),
            )
            _metrics_by_registry[registry] = metrics
        return metrics


class MetricsInterceptor(UnaryServerInterceptor):
    """Counts calls by status code, times them, and tracks how many are in flight."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.metrics = server_metrics(REGISTRY if registry is None else registry)
        self._clock = clock

    async def handle(
        self, method: str, request: Any, context: ServicerContext, behavior: Behavior
    ) -> Any:
        service, name = split_method(method)
        in_flight = self.metrics.in_flight.labels(service, name)
        in_flight.inc()
        started = self._clock.now()
        error: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            in_flight.dec()
            self.metrics.latency.labels(service, name).observe(self._clock.now() - started)
            self.metrics.requests.labels(service, name, _status_name(context, error)).inc()


class LoggingInterceptor(UnaryServerInterceptor):
    """One line per call: method, status code, duration and request id; DEBUG, WARNING if not OK."""

    def __init__(
        self, logger: logging.Logger | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._logger = logger or _log
        self._clock = clock

    async def handle(
        self, method: str, request: Any, context: ServicerContext, behavior: Behavior
    ) -> Any:
        started = self._clock.now()
        error: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            code = _status_name(context, error)
            level = logging.DEBUG if code == "OK" else logging.WARNING
            if self._logger.isEnabledFor(level):
                millis = (self._clock.now() - started) * 1000
                request_id = current_request_id()
                self._logger.log(
                    level,
                    "%s %s %.1f ms request_id=%s",
                    method,
                    code,
                    millis,
                    request_id,
                    extra={
                        "grpc_method": method,
                        "grpc_code": code,
                        "duration_ms": millis,
                        "request_id": request_id,
                    },
                )


def default_interceptors(
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
    logger: logging.Logger | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The standard stack, outermost first.

    Request context wraps everything so every later layer sees the request id;
    logging and metrics see the final status; error mapping turns exceptions
    from everything below into statuses; the deadline sits next to the servicer.
    """
    return [
        RequestContextInterceptor(),
        LoggingInterceptor(logger, clock=clock),
        MetricsInterceptor(registry, clock=clock),
        ErrorMappingInterceptor(logger),
        DeadlineInterceptor(clock=clock),
    ]
