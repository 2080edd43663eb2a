"""Settings errors as a user reads them: by environment variable, with the bad value."""

from __future__ import annotations

from pydantic import ValidationError

from servicegrid._settings_sources import GRPC_TARGET_SUFFIX, http_service_name

__all__ = ["format_errors"]


def _env_var_for(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "configuration"
    head = str(loc[0])
    if head == "http_services" and len(loc) > 1:
        key = str(loc[1])
        return key.upper() if http_service_name(key) else f"http_services[{key}]"
    if head == "grpc_targets" and len(loc) > 1:
        return f"{str(loc[1]).upper()}{GRPC_TARGET_SUFFIX}"
    return head.upper()


def _inner_path(loc: tuple[int | str, ...]) -> str:
    """Where inside a JSON value the problem is: ``[0].memory_mb``, ``[acme]``."""
    if not loc or str(loc[0]) in ("http_services", "grpc_targets"):
        return ""
    return "".join(
        f".{part}" if isinstance(part, str) and i else f"[{part}]" for i, part in enumerate(loc[1:])
    )


def format_errors(exc: ValidationError) -> str:
    """One line per environment variable, each of its problems named, ``;``-separated."""
    problems: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if "input" in error and error["type"] != "missing":
            message = f"{message} (got {error['input']!r})"
        if path := _inner_path(error["loc"]):
            message = f"{path}: {message}"
        reasons = problems.setdefault(_env_var_for(error["loc"]), [])
        if message not in reasons:
            reasons.append(message)
    return "\n".join(f"{var}: {'; '.join(reasons)}" for var, reasons in problems.items())
