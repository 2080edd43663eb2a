"""Admission: a request fits if it finishes by its deadline without making a queued one late."""

from __future__ import annotations

import pytest

from servicegrid.batching.admission import Planned, admit

NOW = 100.0


def test_a_request_that_finishes_in_time_is_admitted() -> None:
    queued = [Planned(NOW + 10, 4.0), Planned(NOW + 30, 4.0)]
    assert admit(Planned(NOW + 20, 5.0), queued=queued, backlog=1.0, now=NOW) is None
    # exactly on time still fits
    assert admit(Planned(NOW + 10, 5.0), queued=queued[:1], backlog=1.0, now=NOW) is None


def test_work_ahead_that_pushes_a_request_past_its_deadline_refuses_it_with_the_overshoot() -> None:
    queued = [Planned(NOW + 10, 6.0), Planned(NOW + 12, 3.0)]
    refusal = admit(Planned(NOW + 12, 4.0), queued=queued, backlog=1.0, now=NOW)
    assert refusal is not None
    # 1 + 6 + 3 + 4 = 14 s of work, due in 12: retried 2 s later it would fit
    assert refusal.retry_after == pytest.approx(2.0)
    assert "10.0 s of work is queued ahead" in refusal.reason


def test_a_request_too_big_for_its_own_deadline_has_no_retry_after() -> None:
    refusal = admit(Planned(NOW + 5, 8.0), queued=[], backlog=0.0, now=NOW)
    assert refusal is not None
    assert refusal.retry_after is None
    assert "longer deadline" in refusal.reason


def test_a_request_that_would_make_a_queued_one_late_is_refused() -> None:
    queued = [Planned(NOW + 10, 5.0), Planned(NOW + 12, 5.0)]
    # due first, it fits itself, but the one due at +12 would end at 13
    refusal = admit(Planned(NOW + 4, 3.0), queued=queued, backlog=0.0, now=NOW)
    assert refusal is not None
    assert refusal.retry_after == pytest.approx(10.0)  # when that request is done
    assert "miss its deadline" in refusal.reason


def test_a_queued_request_that_is_late_anyway_is_not_protected() -> None:
    queued = [Planned(NOW + 5, 8.0)]
    assert admit(Planned(NOW + 3, 2.0), queued=queued, backlog=0.0, now=NOW) is None


def test_requests_without_a_deadline_go_last_and_never_refuse_anyone() -> None:
    queued = [Planned(None, 100.0)]
    assert admit(Planned(NOW + 5, 4.0), queued=queued, backlog=0.0, now=NOW) is None
    assert admit(Planned(None, 100.0), queued=[Planned(NOW + 5, 4.0)], backlog=0.0, now=NOW) is None
