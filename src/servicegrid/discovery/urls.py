"""``discovery:///<service>/<path>`` addresses: a service named for discovery to find."""

from __future__ import annotations

from typing import Final

__all__ = ["DISCOVERY_SCHEME", "is_discovery_url", "parse_discovery_url", "split_discovery_url"]

DISCOVERY_SCHEME: Final = "discovery:///"


def is_discovery_url(value: object) -> bool:
    """Whether ``value`` names a discovered service (``discovery:///user-service``)."""
    return isinstance(value, str) and value.strip().lower().startswith(DISCOVERY_SCHEME)


def split_discovery_url(url: str) -> tuple[str, str]:
    """(service, the rest) of ``discovery:///name/rest``; also of ``discovery:/name/rest``,
    which is how httpx writes the same URL back."""
    text = url.strip()
    if not text.lower().startswith("discovery:"):
        raise ValueError(f"{url!r} is not a discovery:///<service> address")
    name, slash, rest = text[len("discovery:") :].lstrip("/").partition("/")
    query = ""
    if "?" in name:
        name, _, query = name.partition("?")
        query = "?" + query
    if not name:
        raise ValueError(f"{url!r} names no service: write discovery:///<service>")
    return name, slash + rest + query


def parse_discovery_url(value: str) -> tuple[str, str]:
    """``discovery:///user-service/api`` -> (``user-service``, ``/api``); ValueError if bad."""
    if not is_discovery_url(value):
        raise ValueError(f"{value!r} is not a discovery:///<service> address")
    name, rest = split_discovery_url(value)
    return name, rest.rstrip("/")
