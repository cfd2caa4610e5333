from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.scans import ScanStatus
from handlers.ingest.liveness import is_lost
from handlers.launcher.lifecycle import Stop, outcome


@pytest.mark.parametrize(
    ("code", "stopped", "status", "reason_start"),
    [
        (0, None, ScanStatus.SUCCEEDED, ""),
        (124, None, ScanStatus.TIMED_OUT, "deadline of 60s"),
        (143, Stop.DEADLINE, ScanStatus.TIMED_OUT, "deadline"),
        (143, Stop.CANCELLED, ScanStatus.CANCELLED, "cancelled"),
        (-9, Stop.CANCELLED, ScanStatus.CANCELLED, "cancelled"),
        (143, Stop.SHUTDOWN, ScanStatus.FAILED, "interrupted"),
        (-9, None, ScanStatus.FAILED, "lost: the job was killed by signal 9 SIGKILL"),
        (137, None, ScanStatus.FAILED, "lost: the job was killed by signal 9"),
        (3, None, ScanStatus.FAILED, "the scanner failed"),
        (4, None, ScanStatus.FAILED, "the scanner's output"),
        (5, None, ScanStatus.FAILED, "the job could not reach NATS"),
        (2, None, ScanStatus.FAILED, "the job rejected its environment"),
        (42, None, ScanStatus.FAILED, "the job exited with code 42"),
    ],
)
def test_outcome(code: int, stopped: Stop | None, status: ScanStatus, reason_start: str) -> None:
    got, reason = outcome(code, stopped, 60)
    assert got == status
    assert reason.startswith(reason_start)


NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
HB, LAUNCH = timedelta(seconds=15), timedelta(seconds=120)


@pytest.mark.parametrize(
    ("status", "since_s", "beat_s", "lost"),
    [
        ("running", 60, 5, False),
        ("running", 60, 16, True),
        ("running", 10, None, False),
        ("running", 20, None, True),
        ("launching", 60, None, False),
        ("launching", 121, None, True),
        ("launching", 300, 3, False),
        ("succeeded", 10_000, None, False),
        ("queued", 10_000, None, False),
    ],
)
def test_is_lost(status: str, since_s: int, beat_s: int | None, lost: bool) -> None:
    since = NOW - timedelta(seconds=since_s)
    beat = NOW - timedelta(seconds=beat_s) if beat_s is not None else None
    assert is_lost(status, since, beat, NOW, heartbeat_timeout=HB, launch_timeout=LAUNCH) is lost
