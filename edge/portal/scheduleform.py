"""The schedule form: its fields as a `v1.Schedule`, a schedule as its fields, and the fire
times a cron expression previews (computed by `contracts.cron`, as the scheduler fires).

The tool's options are the start form's (`edge.portal.options`, inputs `<tool>:<option>`
from the config schema); a refusal of one names `config.<option>`, as the API does."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from grpclib.const import Status
from starlette.datastructures import FormData

from contracts import cron, schedules
from contracts.gen.jetscan import v1
from edge import convert
from edge.portal import options
from edge.portal.forms import Refused

PREVIEW_COUNT = 5
FIELDS = (
    "target",
    "tool",
    "cron",
    "timezone",
    "overlap",
    "catchup_window_seconds",
    "jitter_seconds",
    "deadline_seconds",
)
# What an edit changes: every field of the form (pause and resume have their own buttons).
EDITABLE = (*FIELDS, "config")
_NUMBERS = ("catchup_window_seconds", "jitter_seconds", "deadline_seconds")


def blank() -> dict[str, str]:
    return {
        "target": "",
        "tool": "nmap",
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "overlap": "skip",
        "catchup_window_seconds": str(schedules.DEFAULT_CATCHUP_SECONDS),
        "jitter_seconds": "0",
        "deadline_seconds": "0",
        "pause_note": "",
    }


def known_fields(tool: str) -> Iterable[str]:
    """The names a refusal may give that the form shows next to an input."""
    return (*FIELDS, *(f"config.{o.name}" for o in options.options(tool)))


def fields_of(view: schedules.ScheduleView) -> dict[str, Any]:
    s = view.spec
    return {
        **options.form_values(s.tool, s.config),
        "target": s.target,
        "tool": s.tool,
        "cron": s.cron,
        "timezone": s.timezone or "UTC",
        "overlap": s.overlap,
        "catchup_window_seconds": str(s.catchup_window_seconds),
        "jitter_seconds": str(s.jitter_seconds),
        "deadline_seconds": str(s.deadline_seconds),
        "pause_note": s.pause_note,
    }


def read_form(data: FormData) -> dict[str, Any]:
    """The submitted form as the page redraws it (the chosen tool's options as sent)."""
    form: dict[str, Any] = dict(blank())
    for name in (*FIELDS, "pause_note"):
        value = data.get(name)
        form[name] = value.strip() if isinstance(value, str) else ""
    for opt in options.options(form["tool"]):
        name = options.input_name(form["tool"], opt.name)
        if opt.kind == "multi":
            form[name] = data.getlist(name)
        elif opt.kind == "bool":
            form[name] = "on" if data.get(name) in ("on", "true", "1") else ""
        elif isinstance(data.get(name), str):
            form[name] = data[name]
    return form


def config_of(form: dict[str, Any]) -> dict[str, Any]:
    """The config the form's options ask for; a `Refused` naming `config.<option>`."""
    tool = form["tool"]
    raw = {k: v for k, v in form.items() if k.startswith(f"{tool}:")}

    def getlist(name: str) -> list[Any]:
        value = raw.get(name, [])
        return value if isinstance(value, list) else [value]

    try:
        return options.config_from_form(tool, raw, getlist)
    except options.BadOption as exc:
        raise _invalid(exc.field, exc.reason) from None


def _invalid(field: str, reason: str) -> Refused:
    return Refused(Status.INVALID_ARGUMENT, field, reason)


def to_schedule(form: dict[str, Any], *, paused: bool = False) -> v1.Schedule:
    """The schedule a form describes, or a `Refused` naming the form field at fault."""
    config = config_of(form)
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
    """A refusal of the ScheduleService named for the form: `schedule.cron` is `cron`."""
    return Refused(refused.status, refused.field.removeprefix("schedule."), refused.reason)


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
