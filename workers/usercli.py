"""The user commands of `jetscan`: `scan ...` against a running edge, and `parse TOOL FILE`.

Output: aligned tables for people, `--json` for machines (one object for a single scan, one
object per line for lists and streams). Every failure is one line on stderr and exit 1;
a usage mistake is exit 2, as argparse's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import betterproto2
import msgspec
from grpclib import GRPCError
from grpclib.const import Status

from contracts.gen.jetscan import v1
from contracts.settings import Settings
from edge.client import EdgeClient, EdgeUnreachableError, TokenMissingError
from edge.convert import plain
from scanners import PARSERS, TOOLS
from scanners.errors import ParseError
from workers import findingcli, reportcli, schedulecli
from workers.tables import Rows, finding_rows, scan_details, scan_rows, status_name, table
from workers.tooloptions import UsageError, config_from_sets, key_value

EXIT_USAGE = 2
# How long `scan cancel` waits to show the scan cancelled: a job's scanner gets 5 s after
# SIGTERM, and the launcher and ingest a moment to report it.
CANCEL_WAIT = 15
USER_COMMANDS = frozenset({"scan", "parse", "findings", "report", "schedule"})

_STATUSES = {s.name.lower(): s for s in v1.ScanStatus if s != v1.ScanStatus.UNSPECIFIED}
_SEVERITIES = {s.name.lower(): s for s in v1.Severity if s != v1.Severity.UNSPECIFIED}
_TERMINAL = frozenset(
    {
        v1.ScanStatus.SUCCEEDED,
        v1.ScanStatus.FAILED,
        v1.ScanStatus.CANCELLED,
        v1.ScanStatus.TIMED_OUT,
    }
)
_encoder = msgspec.json.Encoder()
M = TypeVar("M", bound=betterproto2.Message)


def add_user_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON output")

    scan = sub.add_parser("scan", help="start, follow and inspect scans (talks to the edge)")
    scan_sub = scan.add_subparsers(dest="scan_command", required=True)
    start = scan_sub.add_parser("start", parents=[as_json], help="start a scan")
    start.add_argument("target", help="host, IP, CIDR or URL (after `--` if it starts with -)")
    start.add_argument("--tool", required=True, choices=sorted(TOOLS))
    start.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=key_value,
        metavar="KEY=VALUE",
        help="a tool option; VALUE is read as JSON when it parses, else as text",
    )
    start.add_argument("--deadline", type=_whole, default=0, metavar="SECONDS")
    start.add_argument("--request-id", default="", help="idempotency key: same key, same scan")
    start.add_argument("--follow", action="store_true", help="print the console until it ends")
    scan_sub.add_parser("get", parents=[as_json], help="show a scan").add_argument("id")
    cancel_parser = scan_sub.add_parser("cancel", parents=[as_json], help="cancel a scan")
    cancel_parser.add_argument("id")
    cancel_parser.add_argument(
        "--wait",
        type=_whole,
        default=CANCEL_WAIT,
        metavar="SECONDS",
        help=f"wait this long to show the scan cancelled (default {CANCEL_WAIT})",
    )
    follow = scan_sub.add_parser("follow", parents=[as_json], help="print a scan's console")
    follow.add_argument("id")
    ls = scan_sub.add_parser("list", parents=[as_json], help="list scans, newest first")
    ls.add_argument("--domain", default="")
    ls.add_argument("--tool", type=_tool)
    ls.add_argument("--status", choices=list(_STATUSES))
    ls.add_argument("--limit", type=_whole, default=50, help="at most this many (0: all)")
    findings = scan_sub.add_parser("findings", parents=[as_json], help="a scan's findings")
    findings.add_argument("id")
    findings.add_argument("--min-severity", choices=list(_SEVERITIES))

    findingcli.add_commands(sub, as_json)
    reportcli.add_commands(sub, as_json)
    schedulecli.add_commands(sub, as_json, key_value)

    parse = sub.add_parser("parse", help="print the findings of a tool's output file as JSON")
    parse.add_argument("tool", choices=sorted(PARSERS))
    parse.add_argument("file", help="the tool's output file (- for stdin)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command == "parse":
            return parse_file(args.tool, args.file)
        if args.command == "findings":
            return asyncio.run(findingcli.command(args, settings))
        if args.command == "report":
            return asyncio.run(reportcli.command(args, settings))
        if args.command == "schedule":
            sets = getattr(args, "settings", [])
            config = config_from_sets(args.tool, sets) if sets else {}
            return asyncio.run(schedulecli.command(args, settings, config, sys.stdout))
        return asyncio.run(_scan_command(args, settings))
    except GRPCError as exc:
        message = " ".join((exc.message or "").split())
        return _fail(f"{exc.status.name}: {message}" if message else exc.status.name)
    except (EdgeUnreachableError, TokenMissingError, reportcli.ReportCommandError) as exc:
        return _fail(str(exc))
    except (UsageError, schedulecli.ScheduleUsageError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        # `jetscan ... | head`: the reader has all it wanted. Point stdout at nothing so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


async def _scan_command(args: argparse.Namespace, settings: Settings) -> int:
    config = config_from_sets(args.tool, args.settings) if args.scan_command == "start" else {}
    async with EdgeClient.from_settings(settings) as client:
        match args.scan_command:
            case "start":
                scan = await client.start_scan(
                    args.target,
                    args.tool,
                    config,
                    request_id=args.request_id,
                    deadline_seconds=args.deadline,
                )
                if not args.follow:
                    _show_scan(scan, args.json)
                    return 0
                _started(scan, args.json)
                return await follow(client, scan.id, as_json=args.json, seen=scan.status)
            case "get":
                _show_scan(await client.get_scan(args.id), args.json)
            case "cancel":
                await cancel(client, args.id, as_json=args.json, wait=args.wait)
            case "follow":
                return await follow(client, args.id, as_json=args.json)
            case "list":
                status = _STATUSES[args.status] if args.status else v1.ScanStatus.UNSPECIFIED
                scans = client.list_scans(
                    domain=args.domain, tool=args.tool or "", status=status, limit=args.limit
                )
                rows = [s async for s in scans]
                _show_list(rows, args.json, scan_rows)
            case "findings":
                severity = _SEVERITIES.get(args.min_severity or "", v1.Severity.UNSPECIFIED)
                found = [f async for f in client.list_findings(args.id, min_severity=severity)]
                _show_list(found, args.json, finding_rows)
    return 0


async def follow(
    client: EdgeClient,
    scan_id: str,
    *,
    as_json: bool,
    seen: v1.ScanStatus | None = None,
    poll_interval: float = 1.0,
) -> int:
    """Print the scan's console until it ends; return the exit code `exit_status` gives it.

    The watch shows a finished scan's status first, then its whole console, then the status
    again: a terminal status ends the follow only once the watch itself ends, and is shown
    (with `--json`) once, last. Should an edge answer UNIMPLEMENTED, or a watch end before the
    scan does, the status is polled instead: no console, but the same end. `seen` is a status
    already shown, not to be repeated.
    """
    last = seen
    final: v1.Scan | None = None
    try:
        async for event in client.watch_scan(scan_id):
            which, value = betterproto2.which_one_of(event, "event")
            if isinstance(value, v1.Scan):
                if value.status in _TERMINAL:
                    final = value
                elif as_json and value.status != last:
                    _emit({which: _dict(value)})
                last = value.status
            elif as_json and value is not None:
                _emit({which: _dict(value)})
            elif isinstance(value, v1.OutputLine):
                text = value.text
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                sys.stdout.flush()
    except GRPCError as exc:
        if exc.status != Status.UNIMPLEMENTED:
            raise
    if final is not None:
        if as_json:
            _emit({"status": _dict(final)})
        return _finished(final, as_json)
    while True:
        scan = await client.get_scan(scan_id)
        changed, last = scan.status != last, scan.status
        if changed and as_json:
            _emit({"status": _dict(scan)})
        # Checked even without a change: `seen` may already be terminal (a StartScan
        # retried with the request id of a finished scan).
        if scan.status in _TERMINAL:
            return _finished(scan, as_json)
        if changed and not as_json:
            _note(f"scan {scan.id}: {status_name(scan.status)}")
        await asyncio.sleep(poll_interval)


async def cancel(
    client: EdgeClient,
    scan_id: str,
    *,
    as_json: bool,
    wait: float = CANCEL_WAIT,
    poll_interval: float = 0.5,
) -> None:
    """Cancel the scan and show it as it ends up, or say it is still being cancelled.

    CancelScan answers with the scan as it was when asked (running): showing that would
    read as if the cancel did nothing. A queued scan ends at once, a running one once its
    job has stopped (its scanner gets a grace period), so this waits `wait` seconds for it.
    """
    scan = await client.cancel_scan(scan_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while scan.status not in _TERMINAL and loop.time() < deadline:
        await asyncio.sleep(poll_interval)
        scan = await client.get_scan(scan_id)
    if scan.status in _TERMINAL:
        _show_scan(scan, as_json)
        return
    _note(f"scan {scan.id}: being cancelled; `jetscan scan get {scan.id}` shows when it ends")
    if as_json:
        _emit(_dict(scan) | {"cancelling": True})
    else:
        sys.stdout.write(scan_details(scan, status="cancelling"))


def exit_status(scan: v1.Scan) -> int:
    """The process exit code for a finished scan: the tool's, but never 0 for a failure.

    A failed, cancelled or timed-out scan whose tool exited 0 (or never ran) gives 1, so a
    script can trust `$?`. Codes outside 0-255 cannot be an exit status and become 1.
    """
    code = scan.exit_code
    if scan.status == v1.ScanStatus.SUCCEEDED:
        return code if code is not None and 0 <= code <= 255 else 0
    return code if code is not None and 1 <= code <= 255 else 1


def parse_file(tool: str, path: str) -> int:
    parse_stream = PARSERS[tool]
    try:
        # Streamed, never read whole: nmap files of hundreds of MB are normal.
        fp = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        return _fail(f"{path}: {exc.strerror or exc}")
    try:
        with fp:
            output = parse_stream(fp)
    except ParseError as exc:
        return _fail(f"{path}: not valid {exc}")
    except OSError as exc:  # a directory, or a read error half-way
        return _fail(f"{path}: {exc.strerror or exc}")
    out = sys.stdout.buffer
    for finding in output.findings:
        out.write(_encoder.encode(finding) + b"\n")
    out.flush()
    if output.partial:
        _note(f"{path}: {tool} stopped early; these are the findings it got to")
    return 0


def _tool(text: str) -> str:
    if text not in TOOLS:
        known = ", ".join(sorted(TOOLS))
        raise argparse.ArgumentTypeError(f"unknown tool {text!r}; expected one of {known}")
    return text


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def _show_scan(scan: v1.Scan, as_json: bool) -> None:
    if as_json:
        _emit(_dict(scan))
    else:
        sys.stdout.write(scan_details(scan))


def _show_list(items: Sequence[M], as_json: bool, rows_of: Callable[[Sequence[M]], Rows]) -> None:
    if as_json:
        for item in items:
            _emit(_dict(item))
        return
    headers, rows = rows_of(items)
    sys.stdout.write(table(headers, rows))


def _started(scan: v1.Scan, as_json: bool) -> None:
    if as_json:
        _emit({"status": _dict(scan)})
    else:
        _note(f"scan {scan.id}: {status_name(scan.status)} ({scan.tool} {scan.target})")


def _finished(scan: v1.Scan, as_json: bool) -> int:
    code = exit_status(scan)
    if not as_json:
        detail = f": {scan.error}" if scan.error else ""
        _note(f"scan {scan.id}: {status_name(scan.status)}, exit {code}{detail}")
    return code


def _dict(message: betterproto2.Message) -> Any:
    """Proto JSON with every field present, so scripts need not know proto3's defaults.

    Struct fields hold numbers as doubles; `plain` gives `{"timing": 3}` back, not 3.0.
    """
    return plain(message.to_dict(include_default_values=True))


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(_encoder.encode(obj).decode() + "\n")
    sys.stdout.flush()


def _note(line: str) -> None:
    """A line for the person at the terminal, kept off stdout so pipes carry only data."""
    sys.stderr.write(f"jetscan: {line}\n")
    sys.stderr.flush()


def _fail(line: str) -> int:
    _note(line)
    return 1
