"""The schedule form: its fields as a `v1.Schedule`, a schedule as its fields, and the fire
times a cron expression previews (computed by `contracts.cron`, as the scheduler fires)."""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from grpclib.const import Status
from starlette.datastructures import FormData

from contracts import cron, schedules
from contracts.gen.jetscan import v1
from edge import convert
from edge.portal.forms import Refused

PREVIEW_COUNT = 5
FIELDS = (
    "target",
    "tool",
    "config",
    "cron",
    "timezone",
    "overlap",
    "catchup_window_seconds",
    "jitter_seconds",
    "deadline_seconds",
)
# What an edit changes: every field of the form (pause and resume have their own buttons).
EDITABLE = FIELDS
_NUMBERS = ("catchup_window_seconds", "jitter_seconds", "deadline_seconds")


def blank() -> dict[str, str]:
    return {
        "target": "",
        "tool": "nmap",
        "config": "{}",
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "overlap": "skip",
        "catchup_window_seconds": str(schedules.DEFAULT_CATCHUP_SECONDS),
        "jitter_seconds": "0",
        "deadline_seconds": "0",
        "pause_note": "",
    }


def fields_of(view: schedules.ScheduleView) -> dict[str, str]:
    s = view.spec
    return {
        "target": s.target,
        "tool": s.tool,
        "config": json.dumps(s.config, indent=2, sort_keys=True),
        "cron": s.cron,
        "timezone": s.timezone or "UTC",
        "overlap": s.overlap,
        "catchup_window_seconds": str(s.catchup_window_seconds),
        "jitter_seconds": str(s.jitter_seconds),
        "deadline_seconds": str(s.deadline_seconds),
        "pause_note": s.pause_note,
    }


def read_form(data: FormData) -> dict[str, str]:
    form = blank()
    for name in (*FIELDS, "pause_note"):
        value = data.get(name)
        form[name] = value.strip() if isinstance(value, str) else ""
    return form


def _invalid(field: str, reason: str) -> Refused:
    return Refused(Status.INVALID_ARGUMENT, field, reason)


def to_schedule(form: dict[str, str], *, paused: bool = False) -> v1.Schedule:
    """The schedule a form describes, or a `Refused` naming the form field at fault."""
    try:
        config: Any = json.loads(form["config"] or "{}")
    except json.JSONDecodeError as exc:
        raise _invalid("config", f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(config, dict):
        raise _invalid("config", "must be a JSON object of the tool's options")
    numbers: dict[str, int] = {}
    for name in _NUMBERS:
        text = form[name] or "0"
        if not text.isdigit() or len(text) > 9:
            raise _invalid(name, "a whole number of seconds")
        numbers[name] = int(text)
    return v1.Schedule(
        target=form["target"],
        tool=form["tool"],
        config=convert.dict_to_struct(config),
        cron=form["cron"],
        timezone="" if form["timezone"] == "UTC" else form["timezone"],
        overlap=form["overlap"],
        paused=paused,
        pause_note=form["pause_note"] if paused else "",
        catchup_window_seconds=numbers["catchup_window_seconds"],
        jitter_seconds=numbers["jitter_seconds"],
        deadline_seconds=numbers["deadline_seconds"],
    )


def form_field(refused: Refused) -> Refused:
    """A refusal of the ScheduleService named for the form: `schedule.cron` is `cron`, and
    `schedule.config.ports` is `config` (the option named in the reason)."""
    name = refused.field.removeprefix("schedule.")
    if name.startswith("config."):
        return Refused(
            refused.status, "config", f"{name.removeprefix('config.')}: {refused.reason}"
        )
    return Refused(refused.status, name, refused.reason)


@dataclass(frozen=True)
class FireTime:
    local: str
    utc: str


def fire_time(at: datetime, zone_name: str) -> FireTime:
    """`at` on the schedule's wall clock (its zone's abbreviation) and in UTC."""
    utc = at.astimezone(UTC)
    zone = zoneinfo.ZoneInfo(zone_name) if zone_name and zone_name != "UTC" else UTC
    local = utc.astimezone(zone)
    return FireTime(
        local=local.strftime("%a %Y-%m-%d %H:%M %Z"), utc=utc.strftime("%Y-%m-%d %H:%M UTC")
    )


def preview(
    expr: str, zone_name: str, after: datetime, count: int = PREVIEW_COUNT
) -> list[FireTime]:
    """The next `count` fire times of `expr` in `zone_name` after `after`; `cron.CronError`
    names `cron` or `timezone` when either is refused."""
    parsed = cron.parse(expr.strip(), "" if zone_name in ("", "UTC") else zone_name)
    return [fire_time(t, parsed.zone_name) for t in cron.fire_times(parsed, after, count)]
