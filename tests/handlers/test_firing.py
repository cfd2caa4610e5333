"""The scheduler's pure decisions: catch-up, missed, paused, jitter, overlap, run ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts import cron
from contracts.schedules import run_scan_id
from handlers.scheduler import firing
from handlers.scheduler.firing import Outcome, Overlap

T0 = datetime(2027, 5, 1, 3, 0, tzinfo=UTC)
MINUTELY = cron.parse("* * * * *")
HOUR = timedelta(hours=1)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_a_fire_on_time_runs_at_its_nominal_time() -> None:
    p = firing.plan(MINUTELY, T0, T0 + timedelta(seconds=0.3), HOUR, paused=False)
    assert p.records == [] and p.run == T0 and p.next_nominal == T0 + minutes(1)


def test_missed_times_inside_the_window_coalesce_into_one_run_at_the_latest() -> None:
    p = firing.plan(MINUTELY, T0, T0 + minutes(2.5), HOUR, paused=False)
    assert p.run == T0 + minutes(2)
    assert [(r.nominal, r.outcome) for r in p.records] == [
        (T0, Outcome.MISSED),
        (T0 + minutes(1), Outcome.MISSED),
    ]
    assert all("coalesced" in r.reason for r in p.records)
    assert p.next_nominal == T0 + minutes(3)


def test_times_older_than_the_window_are_missed_without_a_run() -> None:
    p = firing.plan(MINUTELY, T0, T0 + minutes(2.5), timedelta(seconds=20), paused=False)
    assert p.run is None
    assert [r.outcome for r in p.records] == [Outcome.MISSED] * 3
    assert all("older than the catch-up window" in r.reason for r in p.records)
    assert p.next_nominal == T0 + minutes(3)


def test_old_and_recent_misses_together() -> None:
    daily = cron.parse("0 3 * * *")
    p = firing.plan(daily, T0, T0 + timedelta(days=3, minutes=10), HOUR, paused=False)
    assert p.run == T0 + timedelta(days=3)
    assert [r.nominal for r in p.records] == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert p.next_nominal == T0 + timedelta(days=4)


def test_a_long_outage_lists_a_bounded_number_of_misses_and_says_so() -> None:
    p = firing.plan(MINUTELY, T0, T0 + timedelta(days=30), HOUR, paused=False)
    missed = [r for r in p.records if "older" in r.reason]
    assert len(missed) == firing.MAX_RECORDED
    assert "not listed" in missed[-1].reason
    assert p.run == T0 + timedelta(days=30)
    assert len([r for r in p.records if "coalesced" in r.reason]) == 60


def test_fires_while_paused_are_skipped_and_never_run() -> None:
    p = firing.plan(MINUTELY, T0, T0 + minutes(2.5), HOUR, paused=True)
    assert p.run is None
    assert [(r.nominal, r.outcome) for r in p.records] == [
        (T0 + minutes(i), Outcome.SKIPPED_PAUSED) for i in range(3)
    ]
    assert p.next_nominal == T0 + minutes(3)


def test_the_next_nominal_time_follows_the_dst_rules() -> None:
    berlin = cron.parse("30 2 * * *", "Europe/Berlin")
    pending = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first of two
    p = firing.plan(berlin, pending, pending + timedelta(seconds=1), HOUR, paused=False)
    assert p.run == pending
    assert p.next_nominal == datetime(2027, 11, 1, 1, 30, tzinfo=UTC)  # not 02:30 CET


@pytest.mark.parametrize("jitter", [1, 30, 300, 86400])
def test_jitter_is_deterministic_and_before_the_next_fire(jitter: int) -> None:
    delays = {firing.jitter(f"s{i}", T0, jitter, MINUTELY) for i in range(200)}
    assert all(timedelta(0) <= d < minutes(1) for d in delays)
    assert len(delays) > 1  # spread, not all in the same second
    assert firing.jitter("s1", T0, jitter, MINUTELY) == firing.jitter("s1", T0, jitter, MINUTELY)


def test_no_jitter_unless_asked() -> None:
    assert firing.jitter("s1", T0, 0, MINUTELY) == timedelta(0)


def test_jitter_spreads_daily_schedules_over_the_allowed_seconds() -> None:
    daily = cron.parse("0 3 * * *")
    delays = [firing.jitter(f"s{i}", T0, 300, daily).total_seconds() for i in range(500)]
    assert max(delays) <= 300 and len(set(delays)) > 100


@pytest.mark.parametrize(
    ("policy", "running", "want"),
    [
        (Overlap.SKIP, True, Outcome.SKIPPED_OVERLAP),
        (Overlap.SKIP, False, None),
        (Overlap.ALLOW, True, None),
        (Overlap.REPLACE, True, None),
    ],
)
def test_overlap(policy: Overlap, running: bool, want: Outcome | None) -> None:
    assert firing.overlap_action(policy, running) is want


def test_a_runs_scan_id_is_a_function_of_schedule_and_nominal_time() -> None:
    other_zone = T0.astimezone(cron.parse_zone("Europe/Berlin"))
    assert run_scan_id("s1", T0) == run_scan_id("s1", other_zone)
    assert run_scan_id("s1", T0) != run_scan_id("s1", T0 + minutes(1))
    assert run_scan_id("s1", T0) != run_scan_id("s2", T0)
