"""The API key check: which principal a key belongs to, and whether a rule allows an action.

Keys are held as SHA-256 digests only and compared with :func:`hmac.compare_digest`
against every configured key, so neither memory nor timing tells a key's text.
A grant's rules (``API_GATEWAY_KEYS``) read ``*``, ``<resource>:*``,
``*:<action>`` or ``<resource>:<action>``; the first that matches allows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from servicegrid.apps.api_gateway.schemas import ValidateAnswer
from servicegrid.settings import ApiKeyGrant

__all__ = ["NO_KEYS", "UNKNOWN_KEY", "KeyTable", "rule_allows"]

NO_KEYS: Final = "no API keys are configured (API_GATEWAY_KEYS)"
UNKNOWN_KEY: Final = "unknown API key"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def rule_allows(rule: str, resource: str, action: str) -> bool:
    """Whether ``rule`` (``*``, ``res:*``, ``*:act``, ``res:act``) allows ``action`` on
    ``resource``."""
    if rule == "*":
        return True
    rule_resource, colon, rule_action = rule.partition(":")
    if not colon:
        return False
    return rule_resource in ("*", resource) and rule_action in ("*", action)


class KeyTable:
    """The configured keys, by digest; :meth:`check` is pure (no I/O, no clock)."""

    def __init__(self, keys: Mapping[str, ApiKeyGrant]) -> None:
        self._grants: tuple[tuple[bytes, ApiKeyGrant], ...] = tuple(
            (_digest(key), grant) for key, grant in keys.items()
        )

    def __len__(self) -> int:
        return len(self._grants)

    def _grant_of(self, api_key: str) -> ApiKeyGrant | None:
        given = _digest(api_key)
        found: ApiKeyGrant | None = None
        for digest, grant in self._grants:  # no early exit: every key costs the same
            if hmac.compare_digest(given, digest):
                found = grant
        return found

    def check(self, api_key: str, resource: str, action: str) -> ValidateAnswer:
        """May ``api_key`` do ``action`` on ``resource``; the answer says why."""
        if not self._grants:
            return ValidateAnswer(allowed=False, principal="", reason=NO_KEYS)
        grant = self._grant_of(api_key)
        if grant is None:
            return ValidateAnswer(allowed=False, principal="", reason=UNKNOWN_KEY)
        for rule in grant.allow:
            if rule_allows(rule, resource, action):
                return ValidateAnswer(
                    allowed=True, principal=grant.principal, reason=f"allowed by rule {rule}"
                )
        return ValidateAnswer(
            allowed=False,
            principal=grant.principal,
            reason=f"{grant.principal} may not {action} on {resource}",
        )
