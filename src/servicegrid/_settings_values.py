"""The value types of the settings: what a port, a host, a gRPC target or a URL must look like.

Each is an ``Annotated`` type whose validator raises ValueError with a message
that :func:`servicegrid.settings.load_settings` puts beside the variable's name.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import NoDecode

__all__ = [
    "CommaList",
    "Count",
    "Device",
    "DiscoveryOrder",
    "GrpcTarget",
    "HostName",
    "HostPort",
    "HttpUrl",
    "ModelRuntime",
    "Port",
    "Seconds",
    "log_level",
]

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_LOG_LEVELS: Final = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


# -- value checks ------------------------------------------------------------


def _check_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port must be a number in 1..65535, not {text!r}")
    return int(text)


def _check_host(host: str) -> None:
    if host.startswith("[") and host.endswith("]"):
        ipaddress.IPv6Address(host[1:-1])  # raises ValueError with a clear message
        return
    if not host or not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise ValueError(f"{host!r} is not a valid host name")


def _check_host_port(value: str, *, port_required: bool = True) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        if port_required:
            raise ValueError("expected host:port")
        _check_host(value)
        return
    _check_host(host)
    _check_port(port)


def _grpc_target(value: str) -> str:
    """Accept ``host:port``, ``grpc://host:port`` (normalised to ``host:port``) or a gRPC URI."""
    value = value.strip()
    if value.lower().startswith("grpc://"):
        value = value[len("grpc://") :].rstrip("/")
    scheme, sep, rest = value.partition(":")
    scheme = scheme.lower()
    if sep and scheme == "dns":
        # dns:[//authority/]host[:port]
        if rest.startswith("//"):
            _, slash, rest = rest[2:].partition("/")
            if not slash:
                raise ValueError("expected dns:///host:port")
        _check_host_port(rest, port_required=False)
    elif sep and scheme == "discovery":
        # discovery:///embedding-service: found through discovery, balanced over its instances
        if not rest.startswith("///") or not _HOST_LABEL.match(rest[3:].rstrip("/")):
            raise ValueError("expected discovery:///<service name>")
    elif sep and scheme in ("unix", "unix-abstract"):
        if not rest.strip("/"):
            raise ValueError(f"{scheme}: target needs a path")
    elif sep and scheme in ("ipv4", "ipv6"):
        for address in rest.split(","):
            _check_host_port(address, port_required=False)
    elif sep and scheme in ("http", "https"):
        raise ValueError("expected a gRPC target (host:port), not an http(s) URL")
    else:
        _check_host_port(value)
    return value


def _http_url(value: str) -> str:
    """Accept an absolute http(s) URL with a host; a trailing ``/`` is dropped."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"URL scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if not parts.hostname:
        raise ValueError("URL has no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError as exc:
        raise ValueError(f"URL has an invalid port: {exc}") from None
    return value.rstrip("/")


def log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LOG_LEVELS)}")
    return level


_BACKENDS: Final = ("consul", "etcd", "dns", "env")


def _host_name(value: str) -> str:
    value = value.strip()
    _check_host(value if ":" not in value or value.startswith("[") else f"[{value}]")
    return value


def _host_port(value: str) -> str:
    value = value.strip()
    _check_host_port(value)
    return value


def _discovery_order(value: object) -> tuple[str, ...]:
    """``consul,etcd,dns,env`` (or a JSON list): known backends, each once, at least one."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("expected a comma-separated list such as consul,etcd,dns,env")
    order = tuple(str(item).strip().lower() for item in items if str(item).strip())
    unknown = [name for name in order if name not in _BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; choose from {', '.join(_BACKENDS)}")
    if not order or len(set(order)) != len(order):
        raise ValueError("name at least one backend, each once")
    return order


GrpcTarget = Annotated[str, AfterValidator(_grpc_target)]
HostName = Annotated[str, AfterValidator(_host_name)]
HostPort = Annotated[str, AfterValidator(_host_port)]
DiscoveryOrder = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_discovery_order)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Port = Annotated[int, Field(ge=1, le=65535)]
Count = Annotated[int, Field(ge=1)]
Device = Annotated[str, Field(pattern=r"^(cpu|cuda(:[0-9]+)?)$")]
ModelRuntime = Literal["auto", "torch", "onnx", "onnx-int8"]
"""What runs a model's forward pass: torch, ONNX Runtime (fp32), ONNX Runtime int8, or auto
(ONNX Runtime fp32 on a CPU, torch on a GPU)."""
Seconds = Annotated[float, Field(gt=0)]


def _comma_list(value: object) -> tuple[str, ...]:
    """``a,b,c`` (or a JSON list): the non-empty items, stripped, in order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("expected a comma-separated list")
    return tuple(text for item in items if (text := str(item).strip()))


CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]
