"""Cron expressions: what jetscan accepts, and when a schedule fires, with its DST rules.

Pure and shared by the edge (validation, PreviewSchedule, the next runs it shows) and the
scheduler (the times it fires): the next runs a user sees come from the function that fires.

croniter walks the local wall clock without time zones; this module maps each wall-clock
time to real instants (UTC):
- a time that does not exist (the spring gap) fires once, at the first instant after it;
- a time that happens twice (autumn) fires once, at its first occurrence;
- an expression whose minute or hour field starts with `*` follows real elapsed time (as
  Debian cron does): it fires in both passes of a repeated hour and not in a gap.
croniter 7.0.0 given an aware start fires `30 2 * * *` twice on Europe/Berlin's autumn
change; working on naive wall-clock times avoids that.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter
from croniter.croniter import CroniterBadDateError

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for lowest, lowest+1, ...)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_PART = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")
MAX_LENGTH = 200
# Longer than any shift of a UTC offset (Lord Howe: 30 min, double summer time: 2 h).
_MARGIN = timedelta(hours=3)


class CronError(ValueError):
    """A cron expression or time zone jetscan refuses; `field` is `cron` or `timezone`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Cron:
    expr: str  # as given (a macro stays a macro)
    fields: str  # the five-field form croniter reads
    zone_name: str  # "" is UTC
    zone: tzinfo
    # Neither minute nor hour starts with `*`: a time of day, moved out of a gap and
    # fired once in a repeated hour. Otherwise the expression follows elapsed time.
    fixed: bool


@functools.cache
def _zones() -> frozenset[str]:
    # Debian's tzdata also installs the host's zone and POSIX defaults under these names.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})


def parse_zone(name: str) -> tzinfo:
    if not name or name == "UTC":
        return UTC
    if name not in _zones():
        raise CronError("timezone", f"unknown IANA time zone {name!r}")
    return zoneinfo.ZoneInfo(name)


def _value(text: str, field: int) -> int:
    name, low, high, names = _FIELDS[field]
    if text.isdigit():
        value = int(text)
    elif text in names:
        value = names.index(text) + low
    else:
        raise CronError("cron", f"{name} field: {text!r} is not a number or name")
    if not low <= value <= high:
        raise CronError("cron", f"{name} field: {value} is out of range {low}-{high}")
    return value


def _check_field(text: str, field: int) -> None:
    name = _FIELDS[field][0]
    for part in text.split(","):
        m = _PART.match(part)
        if not m:
            raise CronError("cron", f"{name} field: {part!r} is not a number, range or step")
        star, first, last, step = m.groups()
        if step is not None and int(step) == 0:
            raise CronError("cron", f"{name} field: step 0 in {part!r}")
        if star:
            continue
        lo = _value(first, field)
        if last is not None and _value(last, field) < lo:
            raise CronError("cron", f"{name} field: range {part!r} runs backwards")


@functools.lru_cache(maxsize=4096)
def parse(expr: str, zone_name: str = "") -> Cron:
    """The cron expression in `zone_name`, or CronError naming what is wrong."""
    zone = parse_zone(zone_name)
    text = expr.strip().lower()
    if not text:
        raise CronError("cron", "required")
    if len(text) > MAX_LENGTH:
        raise CronError("cron", f"at most {MAX_LENGTH} characters")
    if text.startswith("@"):
        if text not in MACROS:
            raise CronError(
                "cron", f"{expr!r} is not supported; use five fields or {', '.join(MACROS)}"
            )
        text = MACROS[text]
    parts = text.split()
    if len(parts) == 6:
        raise CronError("cron", "six fields: a seconds field is not supported; use five")
    if len(parts) != 5:
        raise CronError(
            "cron", f"expected five fields (minute hour day month weekday), got {expr!r}"
        )
    for i, part in enumerate(parts):
        _check_field(part, i)
    fields = " ".join(parts)
    cron = Cron(
        expr=expr.strip(),
        fields=fields,
        zone_name="" if zone is UTC else zone_name,
        zone=zone,
        fixed=not parts[0].startswith("*") and not parts[1].startswith("*"),
    )
    try:
        # Any expression fires within 28 years (leap days on a given weekday included).
        croniter(fields, datetime(2001, 1, 1), max_years_between_matches=30).get_next(datetime)
    except CroniterBadDateError:
        raise CronError("cron", f"{expr!r} never fires (no such date)") from None
    return cron


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _gap_end(zone: tzinfo, local: datetime, lo: datetime, hi: datetime) -> datetime:
    """The first instant whose wall time is past `local`, a time in the gap between lo and hi."""
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if _wall(mid, zone) > local:
            hi = mid
        else:
            lo = mid
    return hi


def instants(cron: Cron, local: datetime) -> list[datetime]:
    """The instants (UTC, ascending) at which the wall-clock time `local` fires."""
    zone = cron.zone
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if zone is UTC:
        return [first]
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if _wall(first, zone) == local:  # a repeated time: fold 0 is its first occurrence
        return [first] if cron.fixed else [first, second]
    # A time in a gap: fold 0 reads it with the offset before the change, fold 1 after.
    lo, hi = sorted((first, second))
    return [_gap_end(zone, local, lo, hi)] if cron.fixed else []


@functools.lru_cache(maxsize=65536)
def next_fire(cron: Cron, after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware), as an aware UTC datetime."""
    after = after.astimezone(UTC)
    zone = cron.zone
    start = _wall(after, zone)
    if (
        zone is not UTC
        and (after - _MARGIN).astimezone(zone).utcoffset()
        != (after + _MARGIN).astimezone(zone).utcoffset()
    ):
        # Near an offset change a wall time before `start` may have a second occurrence
        # after `after`.
        start -= _MARGIN
    it = croniter(cron.fields, start, max_years_between_matches=30)
    best: datetime | None = None
    while True:
        found = instants(cron, it.get_next(datetime))
        for t in found:
            if t > after and (best is None or t < best):
                best = t
        # Wall times later than this one fire no earlier than its first instant.
        if best is not None and found and found[0] >= best:
            return best


def fire_times(cron: Cron, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    t = after
    for _ in range(count):
        t = next_fire(cron, t)
        out.append(t)
    return out
