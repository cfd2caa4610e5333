"""`jetscan findings list|get|triage`: findings over time, against a running edge.

Output as the other user commands: a table for people, `--json` for machines (one object per
line for lists); a refused request is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import UTC, datetime
from typing import Any

import betterproto2

from contracts.gen.jetscan import v1
from contracts.settings import Settings
from edge.client import EdgeClient
from edge.convert import plain
from workers.tables import table, timestamp

_STATES = {"open": v1.FindingState.OPEN, "fixed": v1.FindingState.FIXED}
_TRIAGES = {
    "none": v1.Triage.NONE,
    "false-positive": v1.Triage.FALSE_POSITIVE,
    "accepted-risk": v1.Triage.ACCEPTED_RISK,
}
_CHANGES = {c.name.lower(): c for c in v1.Change if c != v1.Change.UNSPECIFIED}
_SEVERITIES = {s.name.lower(): s for s in v1.Severity if s != v1.Severity.UNSPECIFIED}
_HEADERS = ["ID", "SEVERITY", "STATE", "TRIAGE", "TITLE", "TARGET", "WHERE", "LAST SEEN"]


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], as_json: argparse.ArgumentParser
) -> None:
    findings = sub.add_parser("findings", help="findings over time: list, get, triage")
    verbs = findings.add_subparsers(dest="findings_command", required=True)
    ls = verbs.add_parser("list", parents=[as_json], help="findings, most severe first")
    ls.add_argument("--target", default="")
    ls.add_argument("--domain", default="")
    ls.add_argument("--tool", default="")
    ls.add_argument("--state", choices=list(_STATES))
    ls.add_argument("--triage", choices=list(_TRIAGES))
    ls.add_argument("--scan", default="", metavar="SCAN", help="the findings this scan saw")
    ls.add_argument("--changed-in", default="", metavar="SCAN", help="what this scan changed")
    ls.add_argument("--change", choices=list(_CHANGES), help="with --changed-in: one kind")
    ls.add_argument("--min-severity", choices=list(_SEVERITIES))
    ls.add_argument(
        "--include-false-positives", action="store_true", help="false positives are left out"
    )
    ls.add_argument("--limit", type=int, default=100, help="at most this many (0: all)")
    get = verbs.add_parser("get", parents=[as_json], help="a finding, its history and scans")
    get.add_argument("id")
    triage = verbs.add_parser(
        "triage", parents=[as_json], help="mark a finding; every change is kept with who and when"
    )
    triage.add_argument("id")
    kind = triage.add_mutually_exclusive_group(required=True)
    kind.add_argument("--false-positive", action="store_true")
    kind.add_argument("--accept-risk", action="store_true", help="needs --reason")
    kind.add_argument("--severity", choices=list(_SEVERITIES), help="override; needs --reason")
    kind.add_argument("--reopen", action="store_true", help="undo any triage")
    triage.add_argument("--reason", default="")
    rederive = verbs.add_parser(
        "rederive",
        parents=[as_json],
        help="re-parse stored raw output with today's parsers and rebuild the findings"
        " (talks to PostgreSQL and NATS, like `jetscan migrate`)",
    )
    which = rederive.add_mutually_exclusive_group(required=True)
    which.add_argument("--scan", default="", metavar="ID")
    which.add_argument("--tool", default="")
    which.add_argument("--all", action="store_true")
    triage.add_argument(
        "--until", type=_date, metavar="DATE", help="when an accepted risk expires (ISO 8601)"
    )


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def command(args: argparse.Namespace, settings: Settings) -> int:
    if args.findings_command == "rederive":
        return await _rederive(args, settings)
    async with EdgeClient.from_settings(settings) as client:
        match args.findings_command:
            case "list":
                request = v1.ListFindingsRequest(
                    scan_id=args.scan,
                    target=args.target,
                    domain=args.domain,
                    tool=args.tool,
                    state=_STATES[args.state] if args.state else v1.FindingState.UNSPECIFIED,
                    triage=_TRIAGES[args.triage] if args.triage else v1.Triage.UNSPECIFIED,
                    changed_in_scan=args.changed_in,
                    change=_CHANGES[args.change] if args.change else v1.Change.UNSPECIFIED,
                    min_severity=_SEVERITIES.get(args.min_severity or "", v1.Severity.UNSPECIFIED),
                    include_false_positives=args.include_false_positives,
                )
                found = [f async for f in client.find(request, limit=args.limit)]
                _show_list(found, args.json)
            case "get":
                _show(await client.get_finding(args.id), args.json)
            case "triage":
                _show(await client.triage_finding(_triage_request(args)), args.json)
    return 0


async def _rederive(args: argparse.Namespace, settings: Settings) -> int:
    import nats

    from handlers import database, rederive
    from workers import cli  # here: cli imports this module

    pool = await database.connect_pool(cli.database_url(settings), max_size=2)
    try:
        nc = await nats.connect(
            cli.nats_url(settings),
            name="jetscan-cli",
            user_credentials=cli.admin_creds(settings),
        )
        try:
            done = await rederive.rederive(
                pool, nc.jetstream(), scan_id=args.scan, tool=args.tool, every=args.all
            )
        finally:
            await nc.drain()
    finally:
        await pool.close()
    if args.json:
        sys.stdout.write(json.dumps(dataclasses.asdict(done), sort_keys=True) + "\n")
    else:
        lines = [
            f"re-parsed {len(done.reparsed)} scans of {done.targets} targets:"
            f" {done.findings_before} findings before, {done.findings_after} after"
        ]
        lines += [f"skipped {scan}: {why}" for scan, why in sorted(done.skipped.items())]
        sys.stdout.write("\n".join(lines) + "\n")
    if not done.reparsed and not done.skipped:
        sys.stderr.write("jetscan: no scan with a stored result matches\n")
        return 1
    return 1 if done.skipped else 0


def _triage_request(args: argparse.Namespace) -> v1.TriageFindingRequest:
    request = v1.TriageFindingRequest(id=args.id, reason=args.reason, until=args.until)
    if args.false_positive:
        request.triage = v1.Triage.FALSE_POSITIVE
    elif args.accept_risk:
        request.triage = v1.Triage.ACCEPTED_RISK
    elif args.severity:
        request.triage = v1.Triage.NONE
        request.severity_override = _SEVERITIES[args.severity]
    else:
        request.triage = v1.Triage.NONE
    return request


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name).lower().replace("_", "-")
    except ValueError:
        return str(value)


def _where(f: v1.Finding) -> str:
    if f.url:
        return f.url
    if f.port:
        return f"{f.host}:{f.port}/{f.protocol}"
    return f.host or "-"


def _row(f: v1.Finding) -> list[str]:
    return [
        f.id,
        _name(v1.Severity, f.severity),
        _name(v1.FindingState, f.state),
        _name(v1.Triage, f.triage),
        f.title,
        f.target or "-",
        _where(f),
        timestamp(f.last_seen),
    ]


def _show_list(found: list[v1.Finding], as_json: bool) -> None:
    if as_json:
        for f in found:
            _emit(f)
        return
    sys.stdout.write(table(_HEADERS, [_row(f) for f in found]))


def _show(f: v1.Finding, as_json: bool) -> None:
    if as_json:
        _emit(f)
        return
    lines = [
        ("id", f.id),
        ("title", f.title),
        ("tool", f.tool),
        ("target", f.target or "-"),
        ("where", _where(f)),
        ("severity", _name(v1.Severity, f.severity)),
        ("reported", _name(v1.Severity, f.reported_severity)),
        ("state", _name(v1.FindingState, f.state)),
        ("first seen", timestamp(f.first_seen)),
        ("last seen", timestamp(f.last_seen)),
        ("fixed", timestamp(f.fixed_at)),
        ("reopened", str(f.reopened)),
        ("triage", _name(v1.Triage, f.triage)),
        ("reason", f.triage_reason or "-"),
        ("until", timestamp(f.triage_until)),
    ]
    width = max(len(k) for k, _ in lines)
    out = [f"{k.ljust(width)}  {v}" for k, v in lines]
    if f.description:
        out += ["", f.description]
    if f.history:
        out += ["", "triage history:"]
        out += [
            f"  {timestamp(h.at)}  {h.by}  {_name(v1.Triage, h.triage)}"
            + (
                f"  severity {_name(v1.Severity, h.severity_override)}"
                if h.severity_override
                else ""
            )
            + (f"  until {timestamp(h.until)}" if h.until else "")
            + (f"  ({h.reason})" if h.reason else "")
            for h in f.history
        ]
    if f.occurrences:
        out += ["", "scans:"]
        out += [
            f"  {timestamp(o.at)}  {o.scan_id}  {_name(v1.Change, o.change)}" for o in f.occurrences
        ]
    sys.stdout.write("\n".join(out) + "\n")


def _history_line(h: v1.TriageEvent) -> str:
    parts = [timestamp(h.at), h.by, _name(v1.Triage, h.triage)]
    if h.severity_override:
        parts.append(f"severity {_name(v1.Severity, h.severity_override)}")
    if h.until:
        parts.append(f"until {timestamp(h.until)}")
    if h.reason:
        parts.append(f"({h.reason})")
    return "  " + "  ".join(parts)


def _emit(message: betterproto2.Message) -> None:
    sys.stdout.write(
        json.dumps(plain(message.to_dict(include_default_values=True)), sort_keys=True) + "\n"
    )
    sys.stdout.flush()
