"""Health monitor: state transitions, statistics, history, and the background loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from servicegrid.clock import iso_utc
from servicegrid.resilience.health import HealthCheckResult, HealthMonitor, HealthState
from servicegrid.testing import FakeClock


class Scripted:
    """A check that plays back outcomes: True/False/None, an exception, or (seconds, outcome)."""

    def __init__(self, clock: FakeClock, *outcomes: object) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> bool | None:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, tuple):
            seconds, outcome = outcome
            await self.clock.asleep(seconds)
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is None or isinstance(outcome, bool)
        return outcome


def monitor_for(clock: FakeClock, *outcomes: object, **options: object) -> HealthMonitor:
    return HealthMonitor(Scripted(clock, *outcomes), name="embed", clock=clock, **options)  # type: ignore[arg-type]


async def test_unknown_before_the_first_check() -> None:
    monitor = monitor_for(FakeClock(), True)
    assert monitor.state is HealthState.UNKNOWN
    assert not monitor.is_healthy()
    assert monitor.get_status() == {
        "name": "embed",
        "status": "unknown",
        "consecutive_failures": 0,
        "uptime_percentage": 0.0,
        "average_response_time_ms": 0.0,
        "last_response_time_ms": None,
        "last_check": None,
        "total_checks": 0,
        "history_size": 0,
    }


async def test_a_fast_success_is_healthy() -> None:
    clock = FakeClock()
    monitor = monitor_for(clock, (0.25, True))
    result = await monitor.check_now()
    assert result == HealthCheckResult(HealthState.HEALTHY, 0.25, clock.wall(), None)
    assert monitor.is_healthy()


async def test_none_counts_as_success() -> None:
    monitor = monitor_for(FakeClock(), None)
    assert (await monitor.check_now()).state is HealthState.HEALTHY


async def test_a_slow_success_is_degraded() -> None:
    monitor = monitor_for(FakeClock(), (2.0, True), degraded_response_time=1.0)
    result = await monitor.check_now()
    assert result.state is HealthState.DEGRADED
    assert result.error is None
    assert monitor.consecutive_failures == 0


async def test_failures_degrade_then_make_unhealthy_and_a_success_recovers() -> None:
    changes: list[tuple[HealthState, HealthState]] = []
    clock = FakeClock()
    monitor = monitor_for(
        clock,
        True,
        False,
        False,
        False,
        False,
        True,
        unhealthy_threshold=3,
        on_change=[lambda old, new: changes.append((old, new))],
    )
    states = [(await monitor.check_now()).state for _ in range(6)]
    assert states == [
        HealthState.HEALTHY,
        HealthState.DEGRADED,
        HealthState.DEGRADED,
        HealthState.UNHEALTHY,
        HealthState.UNHEALTHY,
        HealthState.HEALTHY,
    ]
    assert changes == [
        (HealthState.UNKNOWN, HealthState.HEALTHY),
        (HealthState.HEALTHY, HealthState.DEGRADED),
        (HealthState.DEGRADED, HealthState.UNHEALTHY),
        (HealthState.UNHEALTHY, HealthState.HEALTHY),
    ]
    assert monitor.consecutive_failures == 0


async def test_a_raising_check_is_a_failure_not_an_error() -> None:
    monitor = monitor_for(FakeClock(), ConnectionRefusedError("port 50051 closed"))
    result = await monitor.check_now()
    assert result.state is HealthState.DEGRADED
    assert result.error == "ConnectionRefusedError: port 50051 closed"
    assert monitor.consecutive_failures == 1


async def test_a_check_that_returns_false_says_so() -> None:
    result = await monitor_for(FakeClock(), False).check_now()
    assert result.error == "check returned False"


async def test_a_check_that_hangs_times_out() -> None:
    never = asyncio.Event()

    async def hangs() -> bool:
        await never.wait()
        return True

    monitor = HealthMonitor(hangs, timeout=0.001, clock=FakeClock())
    result = await monitor.check_now()
    assert result.state is HealthState.DEGRADED
    assert result.error is not None
    assert "no answer within" in result.error


async def test_uptime_and_response_times() -> None:
    clock = FakeClock()
    monitor = monitor_for(clock, (0.1, True), (0.3, True), (0.2, False), (0.2, True))
    for _ in range(4):
        await monitor.check_now()
    status = monitor.get_status()
    assert status["uptime_percentage"] == 75.0
    assert status["average_response_time_ms"] == pytest.approx(200.0)
    assert status["last_response_time_ms"] == pytest.approx(200.0)
    assert status["last_check"] == iso_utc(clock.wall())
    assert status["last_check"].endswith("Z")
    assert (status["total_checks"], status["history_size"]) == (4, 4)
    assert monitor.total_successes == 3


async def test_history_keeps_the_last_100() -> None:
    clock = FakeClock()
    monitor = monitor_for(clock, True)
    for _ in range(150):
        clock.advance(1.0)
        await monitor.check_now()
    assert len(monitor.history) == 100
    assert monitor.history[-1].checked_at == clock.wall()
    assert monitor.history[0].checked_at == clock.wall() - 99.0
    assert monitor.get_status()["history_size"] == 100
    assert monitor.total_checks == 150


async def test_a_failing_on_change_callback_does_not_break_the_check() -> None:
    def explode(old: HealthState, new: HealthState) -> None:
        raise RuntimeError("observer bug")

    monitor = monitor_for(FakeClock(), True, on_change=[explode])
    assert (await monitor.check_now()).state is HealthState.HEALTHY


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def test_start_checks_on_an_interval_and_stop_ends_it() -> None:
    clock = FakeClock()
    monitor = monitor_for(clock, True, interval=30.0)
    monitor.start()
    tasks = asyncio.all_tasks()
    monitor.start()  # idempotent: the same loop keeps running
    assert asyncio.all_tasks() == tasks
    await _until(lambda: monitor.total_checks >= 3)
    assert 30.0 in clock.sleeps
    assert monitor.get_status()["status"] == "healthy"
    await monitor.stop()
    await monitor.stop()  # idempotent
    assert not monitor.running
    checks = monitor.total_checks
    for _ in range(10):
        await asyncio.sleep(0)
    assert monitor.total_checks == checks


async def test_the_loop_survives_a_raising_check() -> None:
    clock = FakeClock()
    monitor = monitor_for(clock, RuntimeError("down"), interval=5.0, unhealthy_threshold=3)
    monitor.start()
    await _until(lambda: monitor.total_checks >= 4)
    assert monitor.running
    assert monitor.state is HealthState.UNHEALTHY
    assert monitor.uptime_percentage == 0.0
    await monitor.stop()


async def test_stop_before_start_is_harmless() -> None:
    monitor = monitor_for(FakeClock(), True)
    await monitor.stop()
    assert not monitor.running


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"interval": 0}, "interval"),
        ({"timeout": -1.0}, "timeout"),
        ({"degraded_response_time": float("nan")}, "degraded_response_time"),
        ({"unhealthy_threshold": 0}, "unhealthy_threshold"),
        ({"history_size": 0}, "history_size"),
        ({"history_size": 1.5}, "history_size"),
    ],
)
def test_bad_arguments_name_the_argument(options: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        monitor_for(FakeClock(), True, **options)


def test_a_non_callable_check_is_refused() -> None:
    with pytest.raises(ValueError, match="check"):
        HealthMonitor(None)  # type: ignore[arg-type]
