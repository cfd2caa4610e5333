"""Liveness: a launching or running scan whose job stopped beating is failed as "lost".

No scan stays RUNNING forever: the decision is a pure function of the scan's state, the
last heartbeat and the clock; a loop in the ingest role applies it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.scans import LOST, RETRY, ScanEvent, ScanStatus

SILENT = f"{LOST}: the scan job stopped sending heartbeats"


def is_lost(
    status: str,
    since: datetime,
    last_heartbeat: datetime | None,
    now: datetime,
    *,
    heartbeat_timeout: timedelta,
    launch_timeout: timedelta,
) -> bool:
    """Whether a scan in `status` since `since` with this last heartbeat is lost.

    A running job beats every few seconds; silence for `heartbeat_timeout` means it is gone.
    A launching job may take longer to start beating (an image pull), so it gets
    `launch_timeout` from the moment it was launched.
    """
    if status == "running":
        last = max(last_heartbeat, since) if last_heartbeat else since
        return now - last > heartbeat_timeout
    if status == "launching":
        if last_heartbeat is not None and now - last_heartbeat <= heartbeat_timeout:
            return False
        return now - since > launch_timeout
    return False


def lost(scan_id: str, now: datetime, attempts: int, max_attempts: int) -> ScanEvent:
    """The event for a scan found lost after `attempts` launches: back to the queue for the
    next attempt while `max_attempts` allows one, else failed."""
    attempts = max(attempts, 1)
    if attempts < max_attempts:
        reason = f"{RETRY}: {SILENT}"
        return ScanEvent(
            scan_id=scan_id, status=ScanStatus.QUEUED, at=now, reason=reason, attempt=attempts + 1
        )
    reason = SILENT if attempts <= 1 else f"{SILENT} (attempt {attempts} of {max_attempts})"
    return ScanEvent(scan_id=scan_id, status=ScanStatus.FAILED, at=now, reason=reason)
