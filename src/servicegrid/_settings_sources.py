"""Where the settings find services by name in the environment.

``HttpServicesSource`` gathers every HTTP service variable (``<NAME>_SERVER_URL``,
an http(s) ``<NAME>_SERVICE_URL``, the catalogue's HTTP services' ``<PREFIX>_URL``)
and every ``<NAME>_GRPC_TARGET``, from what pydantic-settings' own environment
source read: nothing else touches ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from servicegrid import catalogue

__all__ = ["GRPC_SERVICE_ENV", "GRPC_TARGET_SUFFIX", "HttpServicesSource", "http_service_name"]

# Service name -> (URL variable, timeout variable), in the order they are reported.
GRPC_SERVICE_ENV: Final[dict[str, tuple[str, str]]] = {
    spec.name: (spec.url_var, spec.timeout_var) for spec in catalogue.grpc_services()
}

_GRPC_URL_VARS: Final = frozenset(url for url, _ in GRPC_SERVICE_ENV.values())
# The catalogue's HTTP services other than the integration service (a setting of its own).
_CATALOGUE_HTTP_VARS: Final[dict[str, str]] = {
    spec.url_var: spec.name
    for spec in catalogue.CATALOGUE
    if not spec.is_grpc and spec.name != "integration"
}
_HTTP_VAR = re.compile(r"^(?P<name>[A-Z0-9][A-Z0-9_]*?)_(?P<suffix>SERVER|SERVICE)_URL$")
GRPC_TARGET_SUFFIX: Final = "_GRPC_TARGET"
# -- HTTP service discovery --------------------------------------------------


_OWN_URL_VARS = frozenset({catalogue.lookup("integration").url_var})


def http_service_name(env_var: str) -> str | None:
    """The service name for an HTTP service variable, or ``None`` if it is not one.

    A catalogue service is called by its catalogue name (``USER_SERVICE_URL`` ->
    ``users``, ``API_GATEWAY_URL`` -> ``api-gateway``); any other service by the
    variable's prefix in kebab case (``CHROMA_SERVER_URL`` -> ``chroma``,
    ``BILLING_SERVICE_URL`` -> ``billing-service``). The gRPC ``*_SERVICE_URL``
    and ``INTEGRATION_SERVICE_URL`` (a setting of its own) give ``None``.
    """
    env_var = env_var.upper()
    if env_var in _CATALOGUE_HTTP_VARS:
        return _CATALOGUE_HTTP_VARS[env_var]
    match = _HTTP_VAR.match(env_var)
    if match is None or env_var in _GRPC_URL_VARS or env_var in _OWN_URL_VARS:
        return None
    name = match["name"].lower().replace("_", "-")
    return f"{name}-service" if match["suffix"] == "SERVICE" else name


def _is_http_value(value: str) -> bool:
    return urlsplit(value.strip()).scheme.lower() in ("http", "https")


class HttpServicesSource(PydanticBaseSettingsSource):
    """Collects the HTTP service variables into ``http_services``, keyed by variable name.

    It reads the variables that ``env_source`` (pydantic-settings' own
    environment source) loaded, so nothing else touches ``os.environ``.
    ``Settings`` renames the keys once their URLs have validated, so an error
    names the variable. ``<NAME>_SERVICE_URL`` values that are not http(s) are
    left alone: that suffix also names gRPC targets elsewhere.
    """

    def __init__(self, settings_cls: type[BaseSettings], env_source: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        env_vars: Mapping[str, str | None] = (
            env_source.env_vars if isinstance(env_source, EnvSettingsSource) else {}
        )
        self._env_vars = env_vars

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ builds the whole value at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, str] = {}
        targets: dict[str, str] = {}
        for raw_name, value in sorted(self._env_vars.items()):
            env_var = raw_name.upper()
            if value is not None and env_var.endswith(GRPC_TARGET_SUFFIX):
                targets[env_var.removesuffix(GRPC_TARGET_SUFFIX)] = value
            if value is None or http_service_name(env_var) is None:
                continue
            if env_var.endswith("_SERVICE_URL") and not _is_http_value(value):
                continue
            found[env_var] = value
        collected: dict[str, Any] = {}
        if found:
            collected["http_services"] = found
        if targets:
            collected["grpc_targets"] = targets
        return collected
