"""Cron expressions: what is refused, and the fire times across daylight saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from cronsim import CronSim

from contracts import cron


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, zone: str, after: str, n: int) -> list[str]:
    c = cron.parse(expr, zone)
    return [t.strftime("%Y-%m-%d %H:%M") for t in cron.fire_times(c, utc(after), n)]


# (expression, zone, after (UTC), the next fire times (UTC))
DST_TABLE = [
    # Europe/Berlin: 2027-03-28 02:00 CET -> 03:00 CEST; 2027-10-31 03:00 CEST -> 02:00 CET.
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2027-03-26 12:00",
        ["2027-03-27 01:30", "2027-03-28 01:00", "2027-03-29 00:30"],
    ),  # gap: at 03:00 CEST
    ("0 2 * * *", "Europe/Berlin", "2027-03-27 12:00", ["2027-03-28 01:00", "2027-03-29 00:00"]),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2027-10-30 12:00",
        ["2027-10-31 00:30", "2027-11-01 01:30"],
    ),  # repeated: first occurrence (CEST) only
    (
        "0,30 2 * * *",
        "Europe/Berlin",
        "2027-03-27 12:00",
        ["2027-03-28 01:00", "2027-03-29 00:00", "2027-03-29 00:30"],
    ),  # both in the gap: once
    (
        "0 * * * *",
        "Europe/Berlin",
        "2027-03-27 23:30",
        ["2027-03-28 00:00", "2027-03-28 01:00", "2027-03-28 02:00"],
    ),  # real hours: 01, 03, 04
    (
        "0 * * * *",
        "Europe/Berlin",
        "2027-10-30 23:30",
        ["2027-10-31 00:00", "2027-10-31 01:00", "2027-10-31 02:00"],
    ),  # 02 CEST, 02 CET, 03
    (
        "*/30 2 * * *",
        "Europe/Berlin",
        "2027-10-30 23:50",
        [
            "2027-10-31 00:00",
            "2027-10-31 00:30",
            "2027-10-31 01:00",
            "2027-10-31 01:30",
            "2027-11-01 01:00",
        ],
    ),  # a wildcard minute follows elapsed time: both passes
    (
        "*/30 2 * * *",
        "Europe/Berlin",
        "2027-03-27 12:00",
        ["2027-03-29 00:00", "2027-03-29 00:30"],
    ),  # ... and skips the gap
    # America/New_York: 2027-03-14 02:00 EST -> 03:00 EDT; 2027-11-07 02:00 EDT -> 01:00 EST.
    (
        "30 2 * * *",
        "America/New_York",
        "2027-03-13 00:00",
        ["2027-03-13 07:30", "2027-03-14 07:00", "2027-03-15 06:30"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2027-11-06 12:00",
        ["2027-11-07 05:30", "2027-11-08 06:30"],
    ),
    ("0 0 * * *", "America/New_York", "2027-11-06 12:00", ["2027-11-07 04:00", "2027-11-08 05:00"]),
    # Australia/Lord_Howe, a 30-minute shift: 2027-10-03 02:00 +10:30 -> 02:30 +11;
    # 2027-04-04 02:00 +11 -> 01:30 +10:30.
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2027-10-01 00:00",
        ["2027-10-01 15:45", "2027-10-02 15:30", "2027-10-03 15:15"],
    ),
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2027-04-02 12:00",
        ["2027-04-02 14:45", "2027-04-03 14:45", "2027-04-04 15:15"],
    ),
    (
        "30 * * * *",
        "Australia/Lord_Howe",
        "2027-04-03 14:00",
        ["2027-04-03 14:30", "2027-04-03 15:00", "2027-04-03 16:00"],
    ),  # 01:30 twice, then 02:30
    (
        "*/15 2 * * *",
        "Australia/Lord_Howe",
        "2027-04-03 12:00",
        ["2027-04-03 15:30", "2027-04-03 15:45", "2027-04-03 16:00", "2027-04-03 16:15"],
    ),
    (
        "*/20 3 * * *",
        "Australia/Lord_Howe",
        "2027-10-02 12:00",
        ["2027-10-02 16:00", "2027-10-02 16:20", "2027-10-02 16:40"],
    ),
    # UTC has no changes.
    ("30 2 * * *", "", "2027-03-27 12:00", ["2027-03-28 02:30", "2027-03-29 02:30"]),
    ("30 2 * * *", "UTC", "2027-10-30 12:00", ["2027-10-31 02:30", "2027-11-01 02:30"]),
    ("@hourly", "", "2027-01-01 00:00", ["2027-01-01 01:00", "2027-01-01 02:00"]),
    ("@daily", "", "2027-01-01 00:00", ["2027-01-02 00:00"]),
    ("@weekly", "", "2027-01-01 00:00", ["2027-01-03 00:00"]),  # Sundays
    ("@monthly", "", "2027-01-15 00:00", ["2027-02-01 00:00"]),
    ("@yearly", "", "2027-01-15 00:00", ["2028-01-01 00:00"]),
    ("0 0 29 2 *", "", "2027-01-01 00:00", ["2028-02-29 00:00", "2032-02-29 00:00"]),
    ("0 3 * * mon-fri", "", "2027-01-01 12:00", ["2027-01-04 03:00", "2027-01-05 03:00"]),
    ("0 0 * * 7", "", "2027-01-01 00:00", ["2027-01-03 00:00"]),  # 7 is Sunday too
    (
        "0 0 13 * 5",
        "",
        "2027-01-01 00:00",
        ["2027-01-08 00:00", "2027-01-13 00:00"],
    ),  # day of month OR day of week
]


@pytest.mark.parametrize(("expr", "zone", "after", "want"), DST_TABLE)
def test_fire_times(expr: str, zone: str, after: str, want: list[str]) -> None:
    assert fires(expr, zone, after, len(want)) == want


def test_croniter_fires_twice_in_berlins_repeated_hour_and_jetscan_once() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    it = croniter("30 2 * * *", datetime(2027, 10, 30, 12, 0, tzinfo=berlin))
    theirs = [it.get_next(datetime).astimezone(UTC) for _ in range(3)]
    assert theirs == [utc("2027-10-31 00:30"), utc("2027-10-31 01:30"), utc("2027-11-01 01:30")]
    assert fires("30 2 * * *", "Europe/Berlin", "2027-10-30 11:00", 2) == [
        "2027-10-31 00:30",
        "2027-11-01 01:30",
    ]


CROSS_CHECK = [
    "30 2 * * *",
    "0 2 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "15 1-3 * * *",
    "0 0 1 * *",
    "5 4 * * 0",
    "45 1 * * *",
    "0 0 29 2 *",
    "0 0 * * 1",
    "*/20 3 * * *",
]
STARTS = [
    "2027-03-13 22:00",
    "2027-03-27 22:00",
    "2027-10-30 22:00",
    "2027-11-06 22:00",
    "2027-04-02 12:00",
    "2027-09-30 12:00",
    "2027-06-01 00:00",
]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", ""])
def test_agrees_with_cronsim(zone: str) -> None:
    """cronsim follows Debian cron's DST rules too. It differs only in the hours around Lord
    Howe's 30-minute changes for expressions with a wildcard minute or hour, where it drops
    real fire times (the second 01:30 in autumn, 03:00 and 03:20 after the spring change:
    see the table above)."""
    tz = ZoneInfo(zone) if zone else UTC
    changes = [utc("2027-04-03 15:00"), utc("2027-10-02 15:30")]

    def odd(t: datetime) -> bool:
        return any(abs((t - c).total_seconds()) < 4 * 3600 for c in changes)

    for expr, start in itertools.product(CROSS_CHECK, STARTS):
        c = cron.parse(expr, zone)
        after = utc(start)
        ours = cron.fire_times(c, after, 40)
        sim = CronSim(expr, after.astimezone(tz))
        theirs = [t.astimezone(UTC) for t in itertools.islice(sim, 40)]
        if zone == "Australia/Lord_Howe" and not c.fixed:
            ours = [t for t in ours if not odd(t)]
            theirs = [t for t in theirs if not odd(t)]
            n = min(len(ours), len(theirs))
            ours, theirs = ours[:n], theirs[:n]
        assert ours == theirs, (expr, zone, start)


REFUSED = [
    ("", "", "cron: required"),
    ("* * * * * *", "", "cron: six fields"),
    ("@reboot", "", "cron: '@reboot' is not supported"),
    ("@every 5m", "", "is not supported"),
    ("0 0 30 2 *", "", "never fires"),
    ("0 0 31 4,6,9,11 *", "", "never fires"),
    ("60 * * * *", "", "minute field: 60 is out of range 0-59"),
    ("0 24 * * *", "", "hour field: 24 is out of range"),
    ("0 0 0 * *", "", "day of month field: 0 is out of range"),
    ("0 0 1 13 *", "", "month field: 13 is out of range"),
    ("0 0 * * 8", "", "day of week field: 8 is out of range"),
    ("5-1 * * * *", "", "runs backwards"),
    ("*/0 * * * *", "", "step 0"),
    ("L * * * *", "", "is not a number or name"),
    ("0 0 ? * *", "", "is not a number, range or step"),
    ("0 0 1W * *", "", "is not a number"),
    ("0 0 * * 5#3", "", "is not a number, range or step"),
    ("0 0 * jan-foo *", "", "month field"),
    ("0 0 * * *", "Mars/Olympus", "timezone: unknown IANA time zone"),
    ("0 0 * * *", "../../etc/passwd", "timezone: unknown"),
    ("0 0 * * *", "localtime", "timezone: unknown"),
    ("0 0 *", "", "expected five fields"),
    ("0 " * 150, "", "at most 200 characters"),
]


@pytest.mark.parametrize(("expr", "zone", "message"), REFUSED)
def test_refused(expr: str, zone: str, message: str) -> None:
    with pytest.raises(cron.CronError, match=message.replace("?", r"\?")) as err:
        cron.parse(expr, zone)
    assert err.value.field in {"cron", "timezone"}


def test_a_leap_day_on_a_weekday_is_accepted() -> None:
    assert cron.parse("0 0 29 2 1").fixed
