"""Schedule commands and query shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class UpsertSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="schedule.upsert"):
    """`cmd.schedule.<id>.upsert`: create or replace a cron schedule for a target."""

    schedule_id: str
    target: str
    domain: str
    tool: str
    config: dict[str, Any]
    cron: str
    timezone: str
    enabled: bool
    requested_by: str
    requested_at: datetime


class DeleteSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="schedule.delete"):
    """`cmd.schedule.<id>.delete`."""

    schedule_id: str
    requested_by: str
    requested_at: datetime


ScheduleCommand = UpsertSchedule | DeleteSchedule


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    target: str
    tool: str
    config: dict[str, Any]
    cron: str
    timezone: str
    enabled: bool
    created_at: datetime
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_scan_id: str = ""


class GetSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """`query.schedule.get`."""

    id: str


class ListSchedules(msgspec.Struct, frozen=True, kw_only=True):
    """`query.schedule.list`."""

    target: str = ""
    page_size: int = 50
    page_token: str = ""


class SchedulePage(msgspec.Struct, frozen=True, kw_only=True):
    schedules: list[ScheduleView]
    next_page_token: str = ""
