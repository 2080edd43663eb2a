"""Small helpers the integration stores share: ids, UTC timestamps, page counts."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

__all__ = ["as_utc", "new_id", "page_count", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite hands stored moments back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def page_count(total: int, per_page: int) -> int:
    return math.ceil(total / per_page)
