"""Liveness: a launching or running scan whose job stopped beating is failed as "lost".

No scan stays RUNNING forever: the decision is a pure function of the scan's state, the
last heartbeat and the clock; a loop in the ingest role applies it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.scans import LOST

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
