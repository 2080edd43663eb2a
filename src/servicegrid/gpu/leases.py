"""Tenant leases on GPU memory, kept in SQLite so a restarted service forgets none.

A lease reserves ``memory_mb`` on one device for one tenant until
``expires_at`` (epoch seconds). A device's free memory is its total less the
memory of its unexpired leases; what its processes use now (NVML's "used") is
reported, not subtracted, since lease holders' own use shows up there.

Every decision runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent
allocations (threads or processes sharing the file) never over-commit a device.
Expired leases stop counting at once and are deleted by :meth:`LeaseStore.sweep`.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import PermissionDenied, ResourceExhausted, ValidationError

__all__ = ["Lease", "LeaseRequest", "LeaseStore", "TenantPolicy"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    allocation_id   TEXT PRIMARY KEY,
    device_id       INTEGER NOT NULL,
    memory_mb       INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    allocated_at    REAL NOT NULL,
    expires_at      REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS leases_idempotency
    ON leases (tenant_id, idempotency_key) WHERE idempotency_key != '';
CREATE INDEX IF NOT EXISTS leases_device ON leases (device_id, expires_at);
"""
_COLUMNS = (
    "allocation_id, device_id, memory_mb, tenant_id, idempotency_key, allocated_at, expires_at"
)


@dataclass(frozen=True, slots=True)
class Lease:
    """Memory reserved on one device for one tenant; times are epoch seconds."""

    allocation_id: str
    device_id: int
    memory_mb: int
    tenant_id: str
    idempotency_key: str
    allocated_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """What a tenant asks for; ``idempotency_key`` makes a retried request safe."""

    device_id: int
    memory_mb: int
    tenant_id: str
    lease_seconds: float
    idempotency_key: str = ""


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """Who may lease, and how much each may hold at once (MiB, across devices).

    An empty ``allowed`` lets every tenant in. ``quotas_mb`` names per-tenant
    limits; the others get ``default_quota_mb`` (None: no limit).
    """

    allowed: frozenset[str] = frozenset()
    quotas_mb: Mapping[str, int] = field(default_factory=dict)
    default_quota_mb: int | None = None

    def check_allowed(self, tenant_id: str) -> None:
        if self.allowed and tenant_id not in self.allowed:
            raise PermissionDenied(f"tenant {tenant_id!r} may not lease GPUs here")

    def quota_mb(self, tenant_id: str) -> int | None:
        return self.quotas_mb.get(tenant_id, self.default_quota_mb)


class LeaseStore:
    """Leases in one SQLite file (``":memory:"`` for a throwaway store)."""

    def __init__(self, path: str | Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- decisions ----------------------------------------------------------------------

    def allocate(
        self, request: LeaseRequest, *, device_total_mb: int, policy: TenantPolicy
    ) -> Lease:
        """A new lease, or the one an earlier request with the same key got.

        Raises PermissionDenied (tenant not allowed, or over its quota),
        ResourceExhausted (not that much unleased memory on the device) and
        ValidationError (an idempotency key reused for a different request).
        """
        policy.check_allowed(request.tenant_id)
        now = self._clock.wall()
        with self._transaction() as db:
            if request.idempotency_key:
                earlier = self._by_key(db, request.tenant_id, request.idempotency_key, now)
                if earlier is not None:
                    return _same_request(earlier, request)
            quota = policy.quota_mb(request.tenant_id)
            if quota is not None:
                held = _sum(db, "tenant_id = ?", request.tenant_id, now)
                if held + request.memory_mb > quota:
                    raise PermissionDenied(
                        f"tenant {request.tenant_id!r} holds {held} MiB; {request.memory_mb} "
                        f"more would pass its quota of {quota} MiB"
                    )
            leased = _sum(db, "device_id = ?", request.device_id, now)
            free = device_total_mb - leased
            if request.memory_mb > free:
                raise ResourceExhausted(
                    f"GPU {request.device_id} has {free} MiB unleased of {device_total_mb};"
                    f" {request.memory_mb} MiB asked for",
                    retry_after=1.0,
                )
            lease = Lease(
                allocation_id=uuid.uuid4().hex,
                device_id=request.device_id,
                memory_mb=request.memory_mb,
                tenant_id=request.tenant_id,
                idempotency_key=request.idempotency_key,
                allocated_at=now,
                expires_at=now + request.lease_seconds,
            )
            # an expired lease may still hold this key until the sweeper runs
            if request.idempotency_key:
                db.execute(
                    "DELETE FROM leases WHERE tenant_id = ? AND idempotency_key = ?",
                    (request.tenant_id, request.idempotency_key),
                )
            db.execute(
                f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    lease.allocation_id,
                    lease.device_id,
                    lease.memory_mb,
                    lease.tenant_id,
                    lease.idempotency_key,
                    lease.allocated_at,
                    lease.expires_at,
                ),
            )
            return lease

    def renew(self, allocation_id: str, tenant_id: str, lease_seconds: float) -> Lease | None:
        """The lease, now expiring ``lease_seconds`` from now; None if it is gone or expired.

        Raises PermissionDenied when another tenant owns it.
        """
        now = self._clock.wall()
        with self._transaction() as db:
            lease = self._owned(db, allocation_id, tenant_id, now)
            if lease is None:
                return None
            expires_at = now + lease_seconds
            db.execute(
                "UPDATE leases SET expires_at = ? WHERE allocation_id = ?",
                (expires_at, allocation_id),
            )
            return dataclasses.replace(lease, expires_at=expires_at)

    def release(self, allocation_id: str, tenant_id: str) -> bool:
        """End the lease; False when there was none (already released or expired).

        Raises PermissionDenied when another tenant owns it.
        """
        now = self._clock.wall()
        with self._transaction() as db:
            if self._owned(db, allocation_id, tenant_id, now) is None:
                return False
            db.execute("DELETE FROM leases WHERE allocation_id = ?", (allocation_id,))
            return True

    # ---- reading ------------------------------------------------------------------------

    def active(self) -> list[Lease]:
        """Unexpired leases, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM leases WHERE expires_at > ? ORDER BY allocated_at",
                (self._clock.wall(),),
            ).fetchall()
        return [Lease(*row) for row in rows]

    def leased_mb(self) -> dict[int, int]:
        """Unexpired leased memory per device id (devices with none are absent)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, SUM(memory_mb) FROM leases WHERE expires_at > ?"
                " GROUP BY device_id",
                (self._clock.wall(),),
            ).fetchall()
        return {int(device): int(total) for device, total in rows}

    def sweep(self) -> int:
        """Delete expired leases; how many went."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM leases WHERE expires_at <= ?", (self._clock.wall(),))
            return int(cursor.rowcount)

    # ---- helpers ------------------------------------------------------------------------

    def _by_key(self, db: sqlite3.Connection, tenant_id: str, key: str, now: float) -> Lease | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM leases"
            " WHERE tenant_id = ? AND idempotency_key = ? AND expires_at > ?",
            (tenant_id, key, now),
        ).fetchone()
        return None if row is None else Lease(*row)

    def _owned(
        self, db: sqlite3.Connection, allocation_id: str, tenant_id: str, now: float
    ) -> Lease | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM leases WHERE allocation_id = ? AND expires_at > ?",
            (allocation_id, now),
        ).fetchone()
        if row is None:
            return None
        lease = Lease(*row)
        if lease.tenant_id != tenant_id:
            raise PermissionDenied(f"allocation {allocation_id} belongs to another tenant")
        return lease


def _sum(db: sqlite3.Connection, where: str, value: object, now: float) -> int:
    row = db.execute(
        f"SELECT COALESCE(SUM(memory_mb), 0) FROM leases WHERE {where} AND expires_at > ?",
        (value, now),
    ).fetchone()
    return int(row[0])


def _same_request(earlier: Lease, request: LeaseRequest) -> Lease:
    if (earlier.device_id, earlier.memory_mb) != (request.device_id, request.memory_mb):
        raise ValidationError(
            f"idempotency_key: {request.idempotency_key!r} was used for a different request"
            f" ({earlier.memory_mb} MiB on GPU {earlier.device_id})"
        )
    return earlier
