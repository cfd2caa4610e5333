"""Schedule commands (`cmd.schedule.<id>.<verb>`), run history and query shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts.scans import StartScan

OVERLAP_POLICIES = ("skip", "allow", "replace")
DEFAULT_CATCHUP_SECONDS = 3600
MAX_CATCHUP_SECONDS = 86400
MAX_JITTER_SECONDS = 86400
# Who started a scan: a StartScan call, the portal's form, a schedule's fire, or a
# schedule's run-now.
TRIGGERS = ("api", "portal", "schedule", "manual")
OUTCOMES = (
    "started",
    "skipped_overlap",
    "skipped_paused",
    "missed",
    "refused_scope",
    "failed",
)


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a user sets on a schedule, validated by the edge before it is published."""

    target: str
    domain: str
    tool: str
    config: dict[str, Any]
    deadline_seconds: int
    cron: str
    timezone: str = ""
    overlap: str = "skip"
    catchup_window_seconds: int = DEFAULT_CATCHUP_SECONDS
    jitter_seconds: int = 0
    paused: bool = False
    pause_note: str = ""


def retimes(old: ScheduleSpec, new: ScheduleSpec) -> bool:
    """Whether an update moves the next fire time to the first after now: a new rule, or a
    resume (so the fire times missed while paused are not run)."""
    rule = (old.cron, old.timezone, old.jitter_seconds)
    return rule != (new.cron, new.timezone, new.jitter_seconds) or (old.paused and not new.paused)


class UpsertSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="schedule.upsert"):
    """`cmd.schedule.<id>.upsert`: create (`create`) or replace a schedule's settings.

    A create for an id that exists changes nothing (a replayed create must not undo a later
    update); an update of an id that does not exist (deleted meanwhile) is dropped.
    """

    schedule_id: str
    spec: ScheduleSpec
    create: bool
    requested_by: str
    requested_at: datetime
    request_id: str = ""


class DeleteSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="schedule.delete"):
    """`cmd.schedule.<id>.delete`."""

    schedule_id: str
    requested_by: str
    requested_at: datetime


class RunSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="schedule.run"):
    """`cmd.schedule.<id>.run`: run now, whatever the pause or overlap; `nominal_time` names
    the run (and so its scan id, `run_scan_id`)."""

    schedule_id: str
    nominal_time: datetime
    requested_by: str
    requested_at: datetime


ScheduleCommand = UpsertSchedule | DeleteSchedule | RunSchedule


_RUN_IDS = uuid.UUID("6a657473-6361-6e2d-7363-686564756c65")


def run_scan_id(schedule_id: str, nominal: datetime) -> str:
    """A run's scan id: a pure function of (schedule, nominal UTC time), on every replica."""
    stamp = nominal.astimezone(UTC).isoformat()
    return uuid.uuid5(_RUN_IDS, f"{schedule_id}\x1f{stamp}").hex


def run_command(view: ScheduleView, nominal: datetime, trigger: str) -> StartScan:
    """The StartScan of a run: the same bytes on every replica and every re-publish."""
    s = view.spec
    return StartScan(
        scan_id=run_scan_id(view.id, nominal),
        target=s.target,
        domain=s.domain,
        tool=s.tool,
        config=s.config,
        deadline_seconds=s.deadline_seconds,
        requested_by=view.created_by or "scheduler",
        requested_at=nominal,
        schedule_id=view.id,
        trigger=trigger,
    )


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    spec: ScheduleSpec
    created_at: datetime
    updated_at: datetime
    created_by: str = ""
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_scan_id: str = ""
    last_outcome: str = ""


class RunView(msgspec.Struct, frozen=True, kw_only=True):
    """One nominal time of a schedule and what became of it."""

    schedule_id: str
    nominal_time: datetime
    trigger: str
    outcome: str
    scan_id: str = ""
    reason: str = ""
    recorded_at: datetime


class GetSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """`query.schedule.get`."""

    id: str


class ListSchedules(msgspec.Struct, frozen=True, kw_only=True):
    """`query.schedule.list`: newest first."""

    target: str = ""
    domain: str = ""
    tool: str = ""
    paused: bool | None = None
    page_size: int = 50
    page_token: str = ""


class SchedulePage(msgspec.Struct, frozen=True, kw_only=True):
    schedules: list[ScheduleView]
    next_page_token: str = ""


class ListRuns(msgspec.Struct, frozen=True, kw_only=True):
    """`query.schedule.runs`: newest nominal time first."""

    schedule_id: str
    page_size: int = 50
    page_token: str = ""


class RunPage(msgspec.Struct, frozen=True, kw_only=True):
    runs: list[RunView]
    next_page_token: str = ""
