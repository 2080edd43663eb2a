"""LeaseStore on real SQLite files: accounting, expiry, renewal, idempotency, tenants, restarts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegrid.errors import PermissionDenied, ResourceExhausted, ValidationError
from servicegrid.gpu import LeaseRequest, LeaseStore, TenantPolicy
from servicegrid.testing import FakeClock

TOTAL = 24_576
OPEN = TenantPolicy()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[LeaseStore]:
    opened = LeaseStore(tmp_path / "leases.sqlite3", clock=clock)
    yield opened
    opened.close()


def ask(
    memory_mb: int, tenant: str = "acme", *, key: str = "", seconds: float = 60.0
) -> LeaseRequest:
    return LeaseRequest(
        device_id=0,
        memory_mb=memory_mb,
        tenant_id=tenant,
        lease_seconds=seconds,
        idempotency_key=key,
    )


def test_leases_count_against_the_device_until_released(store: LeaseStore) -> None:
    first = store.allocate(ask(16_000), device_total_mb=TOTAL, policy=OPEN)
    assert store.leased_mb() == {0: 16_000}
    with pytest.raises(ResourceExhausted, match="8576 MiB unleased"):
        store.allocate(ask(10_000), device_total_mb=TOTAL, policy=OPEN)
    assert store.release(first.allocation_id, "acme")
    assert not store.release(first.allocation_id, "acme")  # already gone: nothing to do
    assert store.allocate(ask(10_000), device_total_mb=TOTAL, policy=OPEN).memory_mb == 10_000


def test_an_expired_lease_stops_counting_and_is_swept(store: LeaseStore, clock: FakeClock) -> None:
    lease = store.allocate(ask(TOTAL, seconds=30), device_total_mb=TOTAL, policy=OPEN)
    assert lease.expires_at == lease.allocated_at + 30
    clock.advance(30)
    assert store.leased_mb() == {}
    assert store.active() == []
    assert store.allocate(ask(TOTAL), device_total_mb=TOTAL, policy=OPEN)
    assert store.sweep() == 1
    assert not store.release(lease.allocation_id, "acme")


def test_renewal_extends_from_now_and_an_expired_lease_cannot_be_renewed(
    store: LeaseStore, clock: FakeClock
) -> None:
    lease = store.allocate(ask(1_000, seconds=30), device_total_mb=TOTAL, policy=OPEN)
    clock.advance(20)
    renewed = store.renew(lease.allocation_id, "acme", 60)
    assert renewed is not None
    assert renewed.expires_at == clock.wall() + 60
    clock.advance(50)  # past the first expiry, inside the renewed one
    assert [lease.allocation_id] == [active.allocation_id for active in store.active()]
    clock.advance(10)
    assert store.renew(lease.allocation_id, "acme", 60) is None


def test_a_retried_allocation_with_the_same_key_gets_the_same_lease(store: LeaseStore) -> None:
    first = store.allocate(ask(4_096, key="k1"), device_total_mb=TOTAL, policy=OPEN)
    again = store.allocate(ask(4_096, key="k1"), device_total_mb=TOTAL, policy=OPEN)
    assert again == first
    assert store.leased_mb() == {0: 4_096}
    # the key is the tenant's own: another tenant's k1 is another lease
    other = store.allocate(ask(4_096, "globex", key="k1"), device_total_mb=TOTAL, policy=OPEN)
    assert other.allocation_id != first.allocation_id
    with pytest.raises(ValidationError, match="idempotency_key"):
        store.allocate(ask(8_192, key="k1"), device_total_mb=TOTAL, policy=OPEN)


def test_quotas_and_the_allow_list(store: LeaseStore) -> None:
    policy = TenantPolicy(
        allowed=frozenset({"acme", "globex"}), quotas_mb={"acme": 6_000}, default_quota_mb=2_000
    )
    store.allocate(ask(4_000), device_total_mb=TOTAL, policy=policy)
    with pytest.raises(PermissionDenied, match="quota of 6000 MiB"):
        store.allocate(ask(3_000), device_total_mb=TOTAL, policy=policy)
    with pytest.raises(PermissionDenied, match="quota of 2000 MiB"):
        store.allocate(ask(3_000, "globex"), device_total_mb=TOTAL, policy=policy)
    with pytest.raises(PermissionDenied, match="may not lease"):
        store.allocate(ask(1, "initech"), device_total_mb=TOTAL, policy=policy)


def test_only_the_owner_may_release_or_renew(store: LeaseStore) -> None:
    lease = store.allocate(ask(1_000), device_total_mb=TOTAL, policy=OPEN)
    with pytest.raises(PermissionDenied, match="another tenant"):
        store.release(lease.allocation_id, "globex")
    with pytest.raises(PermissionDenied, match="another tenant"):
        store.renew(lease.allocation_id, "globex", 60)
    assert store.leased_mb() == {0: 1_000}


def test_a_restart_keeps_every_lease(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "leases.sqlite3"
    before = LeaseStore(path, clock=clock)
    kept = [
        before.allocate(ask(1_000 * (i + 1)), device_total_mb=TOTAL, policy=OPEN) for i in range(3)
    ]
    before.close()
    after = LeaseStore(path, clock=clock)
    try:
        assert after.active() == kept
        assert after.leased_mb() == {0: 6_000}
        assert after.release(kept[0].allocation_id, "acme")
    finally:
        after.close()


def test_64_concurrent_allocations_never_over_commit(tmp_path: Path) -> None:
    # two stores on one file: as two service processes would share it
    path = tmp_path / "leases.sqlite3"
    stores = [LeaseStore(path), LeaseStore(path)]
    granted: list[int] = []
    refused: list[BaseException] = []
    start = threading.Barrier(64)

    def one(index: int) -> None:
        start.wait()
        try:
            lease = stores[index % 2].allocate(
                ask(1_000, f"tenant-{index % 8}"), device_total_mb=TOTAL, policy=OPEN
            )
            granted.append(lease.memory_mb)
        except ResourceExhausted as exc:
            refused.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(granted) == TOTAL // 1_000  # 24 leases fit, no more
        assert len(refused) == 64 - len(granted)
        assert stores[0].leased_mb() == {0: sum(granted)}
        assert sum(granted) <= TOTAL
    finally:
        for store in stores:
            store.close()
