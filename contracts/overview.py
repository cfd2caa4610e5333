"""`query.overview.get`: the counts the portal's overview shows, in one round trip."""

from __future__ import annotations

import msgspec

from contracts.schedules import ScheduleView


class GetOverview(msgspec.Struct, frozen=True, kw_only=True):
    next_runs: int = 5  # how many of the next scheduled runs to return


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """Scans by status value, open findings (not false positives) by the severity that
    counts (overridden, else reported), and the enabled schedules that fire soonest."""

    scans_by_status: dict[str, int]
    open_by_severity: dict[str, int]
    next_runs: list[ScheduleView]
