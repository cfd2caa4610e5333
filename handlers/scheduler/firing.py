"""What a due schedule does now: pure decisions, table-tested.

Given the nominal time a schedule is waiting for and the clock (the database's), `plan`
lists one outcome per nominal time that has come: missed ones older than the catch-up
window, the ones inside it coalesced into one run at the latest, or all of them skipped
while paused; and the next nominal time to wait for. Fire times come from
`contracts.cron.next_fire`, the function the edge shows next runs with.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from contracts.cron import Cron, next_fire

# A scheduler down for months with `* * * * *` would owe ~10^5 rows; the oldest beyond this
# many are summed up in one reason instead.
MAX_RECORDED = 500


class Outcome(enum.StrEnum):
    STARTED = "started"
    SKIPPED_OVERLAP = "skipped_overlap"
    SKIPPED_PAUSED = "skipped_paused"
    MISSED = "missed"
    REFUSED_SCOPE = "refused_scope"
    FAILED = "failed"


class Overlap(enum.StrEnum):
    SKIP = "skip"
    ALLOW = "allow"
    REPLACE = "replace"


@dataclass(frozen=True)
class Record:
    nominal: datetime
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    records: list[Record] = field(default_factory=list)
    # The nominal time to run now (coalescing everything inside the window), if any.
    run: datetime | None = None
    # The next nominal time to wait for; always after `now`.
    next_nominal: datetime | None = None


def plan(cron: Cron, pending: datetime, now: datetime, window: timedelta, *, paused: bool) -> Plan:
    """What to do at `now` for a schedule whose next nominal time is `pending` (<= now)."""
    records: list[Record] = []
    cutoff = now - window
    t = pending
    if paused:
        while t <= now and len(records) < MAX_RECORDED:
            records.append(Record(t, Outcome.SKIPPED_PAUSED, "the schedule is paused"))
            t = next_fire(cron, t)
        if t <= now:
            t = next_fire(cron, now)
        return Plan(records=records, next_nominal=t)
    while t < cutoff and len(records) < MAX_RECORDED:
        records.append(Record(t, Outcome.MISSED, "older than the catch-up window"))
        t = next_fire(cron, t)
    if t < cutoff:
        # Jump over what is not listed, to the first fire inside the window.
        first = next_fire(cron, cutoff - timedelta(microseconds=1))
        last = records[-1]
        records[-1] = Record(
            last.nominal,
            last.outcome,
            f"{last.reason}; later missed fire times before {first.isoformat()} not listed",
        )
        t = first
    inside: list[datetime] = []
    while t <= now:
        inside.append(t)
        t = next_fire(cron, t)
    run = inside[-1] if inside else None
    for early in inside[:-1]:
        records.append(Record(early, Outcome.MISSED, f"coalesced into the catch-up run at {run}"))
    return Plan(records=records, run=run, next_nominal=t)


def jitter(schedule_id: str, nominal: datetime, jitter_seconds: int, cron: Cron) -> timedelta:
    """The same delay on every replica for a (schedule, nominal time); before the next fire."""
    if jitter_seconds <= 0:
        return timedelta(0)
    room = int((next_fire(cron, nominal) - nominal).total_seconds()) - 1
    spread = max(0, min(jitter_seconds, room))
    digest = hashlib.sha256(
        f"{schedule_id}\x1f{nominal.astimezone(UTC).isoformat()}".encode()
    ).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % (spread + 1))


def overlap_action(policy: Overlap, previous_running: bool) -> Outcome | None:
    """None: start the run (after cancelling the previous scan under `replace`)."""
    if previous_running and policy is Overlap.SKIP:
        return Outcome.SKIPPED_OVERLAP
    return None
