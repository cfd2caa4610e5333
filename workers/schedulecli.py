"""`jetscan schedule ...`: scheduled scans through the edge's ScheduleService.

Output as `jetscan scan ...`: aligned tables or key/value lines for people, `--json` for
machines. Fire times are shown in UTC and, where the schedule has a time zone, in it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.schedules import OVERLAP_POLICIES
from contracts.settings import Settings
from edge.client import EdgeClient
from edge.convert import plain
from scanners import TOOLS
from workers.tables import table, timestamp

_DURATION = re.compile(r"^(\d+)(s|m|h|d)?$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SCHEDULE_HEADERS = ("ID", "TOOL", "TARGET", "CRON", "TZ", "NEXT RUN (UTC)", "LAST", "PAUSED")
RUN_HEADERS = ("NOMINAL (UTC)", "TRIGGER", "OUTCOME", "SCAN", "REASON")
NEXT_SHOWN = 5


def duration(text: str) -> int:
    """`90`, `90s`, `5m`, `1h`, `1d` as whole seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 5m, 1h, got {text!r}")
    return int(m[1]) * _SECONDS[m[2] or "s"]


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    as_json: argparse.ArgumentParser,
    key_value: Any,
) -> None:
    schedule = sub.add_parser("schedule", help="scheduled scans: cron per target (the edge)")
    s = schedule.add_subparsers(dest="schedule_command", required=True)
    create = s.add_parser("create", parents=[as_json], help="one schedule per target")
    create.add_argument("targets", nargs="*", metavar="TARGET")
    create.add_argument("--targets-file", help="one target a line (# starts a comment)")
    create.add_argument("--tool", required=True, choices=sorted(TOOLS))
    create.add_argument("--cron", required=True, help='five fields, e.g. "0 3 * * *", or @daily')
    create.add_argument("--tz", default="", help="IANA time zone (default UTC)")
    create.add_argument(
        "--set", dest="settings", action="append", default=[], type=key_value, metavar="K=V"
    )
    create.add_argument("--overlap", choices=OVERLAP_POLICIES, default="skip")
    create.add_argument("--catchup", type=duration, default=3600, help="e.g. 1h (default)")
    create.add_argument("--jitter", type=duration, default=0, help="e.g. 5m")
    create.add_argument("--deadline", type=duration, default=0, help="per scan; tool default")
    create.add_argument("--paused", action="store_true", help="create paused")
    create.add_argument("--note", default="", help="the pause note, with --paused")
    ls = s.add_parser("list", parents=[as_json], help="list schedules, newest first")
    ls.add_argument("--target", default="")
    ls.add_argument("--domain", default="")
    ls.add_argument("--tool", default="")
    ls.add_argument("--paused", choices=["yes", "no"])
    for name, what in (
        ("get", "show a schedule and its next 5 runs"),
        ("resume", "resume; missed fire times are not run"),
        ("run-now", "start a scan now, even when paused"),
        ("delete", "delete a schedule"),
    ):
        s.add_parser(name, parents=[as_json], help=what).add_argument("id")
    pause = s.add_parser("pause", parents=[as_json], help="pause with a note")
    pause.add_argument("id")
    pause.add_argument("--note", default="")
    runs = s.add_parser("runs", parents=[as_json], help="what became of each fire time")
    runs.add_argument("id")
    runs.add_argument("--limit", type=int, default=50)
    preview = s.add_parser("preview", parents=[as_json], help="the next fire times of a cron")
    preview.add_argument("cron")
    preview.add_argument("--tz", default="")
    preview.add_argument("--count", type=int, default=NEXT_SHOWN)


class ScheduleUsageError(Exception):
    """Arguments that cannot work: no target, or a targets file that cannot be read."""


def _targets(args: argparse.Namespace) -> list[str]:
    targets = list(args.targets)
    if args.targets_file:
        try:
            text = (
                sys.stdin.read()
                if args.targets_file == "-"
                else Path(args.targets_file).read_text()
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise ScheduleUsageError(f"--targets-file {args.targets_file}: {exc}") from None
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                targets.append(line)
    if not targets:
        raise ScheduleUsageError("give at least one TARGET or --targets-file")
    return targets


async def command(
    args: argparse.Namespace, settings: Settings, config: dict[str, Any], out: Any
) -> int:
    async with EdgeClient.from_settings(settings) as client:
        stub = client.schedules
        call = client.call
        match args.schedule_command:
            case "create":
                targets = _targets(args)
                made = []
                for target in targets:
                    made.append(
                        await call(
                            stub.create_schedule(
                                v1.CreateScheduleRequest(
                                    schedule=v1.Schedule(
                                        target=target,
                                        tool=args.tool,
                                        config=Struct.from_dict(config),
                                        cron=args.cron,
                                        timezone=args.tz,
                                        overlap=args.overlap,
                                        catchup_window_seconds=args.catchup,
                                        jitter_seconds=args.jitter,
                                        deadline_seconds=args.deadline,
                                        paused=args.paused,
                                        pause_note=args.note,
                                    )
                                )
                            )
                        )
                    )
                _schedules(made, args.json, out)
            case "list":
                paused = None if args.paused is None else args.paused == "yes"
                found: list[v1.Schedule] = []
                token = ""
                while True:
                    page = await call(
                        stub.list_schedules(
                            v1.ListSchedulesRequest(
                                target=args.target,
                                domain=args.domain,
                                tool=args.tool,
                                paused=paused,
                                page_size=100,
                                page_token=token,
                            )
                        )
                    )
                    found += page.schedules
                    if not (token := page.next_page_token):
                        break
                _schedules(found, args.json, out)
            case "get":
                got = await call(stub.get_schedule(v1.GetScheduleRequest(id=args.id)))
                # The stored next run, then the fire times after it (the same function).
                first = [got.next_run_at] if got.next_run_at else []
                rest = await call(
                    stub.preview_schedule(
                        v1.PreviewScheduleRequest(
                            cron=got.cron,
                            timezone=got.timezone,
                            after=got.next_run_at,
                            count=NEXT_SHOWN - len(first),
                        )
                    )
                )
                _details(got, [*first, *rest.fire_times], args.json, out)
            case "pause":
                got = await call(
                    stub.pause_schedule(v1.PauseScheduleRequest(id=args.id, note=args.note))
                )
                _schedules([got], args.json, out)
            case "resume":
                got = await call(stub.resume_schedule(v1.ResumeScheduleRequest(id=args.id)))
                _schedules([got], args.json, out)
            case "run-now":
                scan = await call(stub.run_schedule_now(v1.RunScheduleNowRequest(id=args.id)))
                _emit_or(out, args.json, _dict(scan), f"scan {scan.id}: queued (manual run)\n")
            case "delete":
                await call(stub.delete_schedule(v1.DeleteScheduleRequest(id=args.id)))
                _emit_or(out, args.json, {"deleted": args.id}, f"schedule {args.id}: deleted\n")
            case "runs":
                history = await call(
                    stub.list_schedule_runs(
                        v1.ListScheduleRunsRequest(schedule_id=args.id, page_size=args.limit)
                    )
                )
                _runs(history.runs, args.json, out)
            case "preview":
                got_times = await call(
                    stub.preview_schedule(
                        v1.PreviewScheduleRequest(
                            cron=args.cron, timezone=args.tz, count=args.count
                        )
                    )
                )
                _times(got_times.fire_times, args.tz, args.json, out)
    return 0


def _dict(message: Any) -> Any:
    return plain(message.to_dict(include_default_values=True))


def _emit_or(out: Any, as_json: bool, obj: Any, text: str) -> None:
    out.write(json.dumps(obj) + "\n" if as_json else text)


def _schedules(items: list[v1.Schedule], as_json: bool, out: Any) -> None:
    if as_json:
        for s in items:
            _emit_or(out, True, _dict(s), "")
        return
    rows = [
        [
            s.id,
            s.tool,
            s.target,
            s.cron,
            s.timezone or "UTC",
            timestamp(s.next_run_at),
            s.last_outcome or "-",
            ("yes: " + s.pause_note if s.pause_note else "yes") if s.paused else "no",
        ]
        for s in items
    ]
    out.write(table(SCHEDULE_HEADERS, rows))


def _local(t: datetime, zone: str) -> str:
    return t.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z") if zone else ""


def _details(s: v1.Schedule, times: list[datetime], as_json: bool, out: Any) -> None:
    if as_json:
        obj = _dict(s)
        obj["next_runs"] = [t.isoformat() for t in times]
        _emit_or(out, True, obj, "")
        return
    fields = [
        ("id", s.id),
        ("target", s.target),
        ("tool", s.tool),
        ("cron", s.cron),
        ("timezone", s.timezone or "UTC"),
        ("overlap", s.overlap),
        ("catch-up window", f"{s.catchup_window_seconds}s"),
        ("jitter", f"{s.jitter_seconds}s"),
        (
            "paused",
            f"yes ({s.pause_note})" if s.paused and s.pause_note else "yes" if s.paused else "no",
        ),
        ("last run", timestamp(s.last_run_at)),
        ("last scan", s.last_scan_id or "-"),
        ("last outcome", s.last_outcome or "-"),
    ]
    width = max(len(k) for k, _ in fields)
    out.write("".join(f"{k.ljust(width)}  {v}\n" for k, v in fields))
    out.write("next runs:\n")
    for t in times:
        local = _local(t, s.timezone)
        out.write(f"  {timestamp(t)}" + (f"  {local}" if local else "") + "\n")


def _times(times: list[datetime], zone: str, as_json: bool, out: Any) -> None:
    for t in times:
        if as_json:
            _emit_or(out, True, {"utc": t.isoformat(), "local": _local(t, zone)}, "")
        else:
            local = _local(t, zone)
            out.write(f"{timestamp(t)}" + (f"  {local}" if local else "") + "\n")


def _runs(runs: list[v1.ScheduleRun], as_json: bool, out: Any) -> None:
    if as_json:
        for r in runs:
            _emit_or(out, True, _dict(r), "")
        return
    rows = [
        [timestamp(r.nominal_time), r.trigger, r.outcome, r.scan_id or "-", r.reason or "-"]
        for r in runs
    ]
    out.write(table(RUN_HEADERS, rows))
