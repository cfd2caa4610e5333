"""PostgreSQL → the report's snapshot: the one JSON document every format is rendered from.

Reading is the imperative half (`take`); `assemble` is pure: rows in, a snapshot with every
list in a stable order out, so the same data always gives the same bytes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from contracts import VERSION
from contracts.findings import Finding, Severity
from contracts.reports import (
    SNAPSHOT_SCHEMA,
    Affected,
    Counts,
    GenerateReport,
    Rule,
    ScanSummary,
    Snapshot,
    Subject,
    TargetChanges,
)
from contracts.tracking import Change, FindingState, Triage
from handlers.findingviews import TRIAGE
from handlers.reports.redaction import redact
from handlers.reports.versions import HEAD_LINES, scanner_version

_finding = msgspec.json.Decoder(Finding)
_SEVERITIES = list(Severity)


class SubjectError(Exception):
    """The subject names nothing to report on (no such scan, no scan of the schedule)."""


@dataclass(frozen=True)
class Row:
    """One finding as the subject sees it."""

    id: str
    finding: Finding
    target: str
    state: FindingState
    change: Change
    triage: Triage
    first_seen: datetime
    last_seen: datetime
    severity: Severity
    scanner_severity: Severity
    scan_id: str


_COLUMNS = (
    "f.id, f.body::text AS body, f.target, f.state, f.first_seen, f.last_seen, f.fixed_at,"
    f" f.last_scan_id, {TRIAGE} AS triage,"
    " CASE WHEN f.triage = 'accepted_risk' AND f.triage_until <= now() THEN NULL"
    " ELSE f.severity_override END AS severity_override"
)
_SCAN_COLUMNS = (
    "id, tool, target, domain, status, config::text AS config, created_at, started_at,"
    " finished_at, exit_code, partial, error, result_error, schedule_id, scanner_version"
)


def _row(r: asyncpg.Record, scanned: int, change: str, scan_id: str) -> Row:
    override = r["severity_override"]
    scanner = _SEVERITIES[scanned]
    return Row(
        id=r["id"],
        finding=_finding.decode(r["body"]),
        target=r["target"],
        state=FindingState(r["state"]),
        change=Change(change),
        triage=Triage(r["triage"]),
        first_seen=r["first_seen"],
        last_seen=r["last_seen"],
        severity=scanner if override is None else _SEVERITIES[override],
        scanner_severity=scanner,
        scan_id=scan_id,
    )


def _since_change(r: asyncpg.Record, since: datetime | None) -> str:
    """A finding's change over a period: new if first seen in it, fixed if fixed in it."""
    if r["state"] == "fixed":
        return "fixed"
    if since is None or r["first_seen"] >= since:
        return "new"
    return "unchanged"


async def _scan_ids(conn: asyncpg.Connection, cmd: GenerateReport) -> list[str]:
    if cmd.scan_ids:
        found = {
            r["id"]
            for r in await conn.fetch("SELECT id FROM scans WHERE id = ANY($1)", list(cmd.scan_ids))
        }
        missing = [s for s in cmd.scan_ids if s not in found]
        if missing:
            raise SubjectError(f"no such scan: {', '.join(missing)}")
        return list(cmd.scan_ids)
    if cmd.schedule_id:
        latest = await conn.fetchval(
            "SELECT id FROM scans WHERE schedule_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
            cmd.schedule_id,
        )
        if latest is None:
            raise SubjectError(f"schedule {cmd.schedule_id} has no scan yet")
        return [latest]
    # A domain or target: the latest scan of each tool and target in it.
    column = "domain" if cmd.domain else "target"
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (tool, target) id FROM scans WHERE {column} = $1"  # noqa: S608
        " ORDER BY tool, target, created_at DESC, id DESC",
        cmd.domain or cmd.target,
    )
    return [r["id"] for r in rows]


async def take(conn: asyncpg.Connection, cmd: GenerateReport, at: datetime) -> Snapshot:
    """Read everything the report shows, in one repeatable-read transaction."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        scan_ids = await _scan_ids(conn, cmd)
        scans = await conn.fetch(
            f"SELECT {_SCAN_COLUMNS} FROM scans WHERE id = ANY($1)",  # noqa: S608
            scan_ids,
        )
        rows: list[Row] = []
        if cmd.scan_ids or cmd.schedule_id:
            found = await conn.fetch(
                f"SELECT {_COLUMNS}, sf.severity AS scanned, sf.change, s.id AS scan_id"  # noqa: S608
                " FROM scans s JOIN scan_findings sf ON sf.scan_key = s.key"
                " JOIN findings f ON f.key = sf.finding_key"
                " WHERE s.id = ANY($1)"
                " ORDER BY coalesce(s.observed_at, s.created_at), s.id",
                scan_ids,
            )
            # A finding several listed scans decided on: the latest scan's decision counts.
            latest = {r["id"]: r for r in found}
            rows = [_row(r, r["scanned"], r["change"], r["scan_id"]) for r in latest.values()]
        else:
            since = cmd.options.since
            column = "domain" if cmd.domain else "target"
            found = await conn.fetch(
                f"SELECT {_COLUMNS}, f.severity AS scanned FROM findings f"  # noqa: S608
                f" WHERE f.{column} = $1 AND (f.state = 'open' OR f.fixed_at >= $2)",
                cmd.domain or cmd.target,
                since or datetime.min.replace(tzinfo=at.tzinfo),
            )
            rows = [
                _row(r, r["scanned"], _since_change(r, since), r["last_scan_id"]) for r in found
            ]
        head: dict[str, list[str]] = defaultdict(list)
        for line in await conn.fetch(
            "SELECT scan_id, text FROM scan_output WHERE scan_id = ANY($1) AND seq <= $2"
            " ORDER BY scan_id, seq",
            scan_ids,
            HEAD_LINES,
        ):
            head[line["scan_id"]].append(line["text"])
    return assemble(cmd, at, [_summary(s, head[s["id"]]) for s in scans], rows)


def _summary(r: asyncpg.Record, head: list[str]) -> ScanSummary:
    start, end = r["started_at"], r["finished_at"]
    error = r["error"]
    if r["result_error"] and r["result_error"] not in error:
        error = f"{error}: {r['result_error']}" if error else r["result_error"]
    return ScanSummary(
        id=r["id"],
        tool=r["tool"],
        target=r["target"],
        domain=r["domain"],
        status=r["status"],
        config=msgspec.json.decode(r["config"]),
        created_at=r["created_at"],
        started_at=start,
        finished_at=end,
        duration_seconds=(end - start).total_seconds() if start and end else None,
        exit_code=r["exit_code"],
        partial=bool(r["partial"]) or r["status"] != "succeeded",
        error=error,
        # Recorded from the result; a scan from before that, from its console.
        scanner_version=r["scanner_version"] or scanner_version(r["tool"], head),
        schedule_id=r["schedule_id"],
    )


def rule_of(f: Finding) -> tuple[str, str]:
    """(rule id, rule title): what findings are grouped under in a report."""
    if f.tool == "zap":
        ref = f.evidence.get("alert_ref") or f.evidence.get("plugin_id")
        if ref:
            return f"zap/{ref}", f.title
    title = f.title
    if f.tool == "dns" and f.host and f.host in title:
        # "Subdomain a.example.com": the check is what comes before the name.
        title = title.split(f.host, 1)[0].strip() or title
    # Letters and digits of any script: titles that differ only in CJK, say, are two rules.
    slug = re.sub(r"[\W_]+", "-", title.lower()).strip("-") or "finding"
    return f"{f.tool}/{slug}", title


def uri_of(f: Finding, target: str) -> str:
    if f.url:
        return f.url
    host = f.host or target
    if f.port is not None:
        scheme = f.protocol if f.protocol in ("tcp", "udp", "sctp") else "tcp"
        return f"{scheme}://{host}:{f.port}"
    return f"dns:{host}"


def _remediation(f: Finding) -> str:
    solution = f.evidence.get("solution")
    return solution if isinstance(solution, str) else ""


def _affected(r: Row) -> Affected:
    f = r.finding
    evidence: dict[str, Any] = redact(msgspec.to_builtins(f.evidence))
    return Affected(
        finding_id=r.id,
        title=f.title,
        target=r.target,
        host=f.host,
        port=f.port,
        protocol=f.protocol,
        url=f.url,
        uri=uri_of(f, r.target),
        severity=r.severity,
        scanner_severity=r.scanner_severity,
        state=r.state,
        change=r.change,
        triage=r.triage,
        first_seen=r.first_seen,
        last_seen=r.last_seen,
        fingerprint=f.fingerprint,
        scan_id=r.scan_id,
        description=f.description,
        evidence=evidence,
    )


def _place(a: Affected) -> tuple[Any, ...]:
    return (-a.severity.rank, a.target, a.host, a.port or 0, a.url, a.title, a.finding_id)


def assemble(
    cmd: GenerateReport, at: datetime, scans: list[ScanSummary], rows: list[Row]
) -> Snapshot:
    minimum = cmd.options.min_severity.rank
    kept = [r for r in rows if r.severity.rank >= minimum]
    included = [r for r in kept if cmd.options.include_triaged or r.triage is Triage.NONE]
    groups: dict[str, list[Row]] = defaultdict(list)
    titles: dict[str, str] = {}
    for r in included:
        rule, title = rule_of(r.finding)
        groups[rule].append(r)
        titles.setdefault(rule, title)
    rules = []
    for rule, members in groups.items():
        affected = sorted((_affected(r) for r in members), key=_place)
        first = min(members, key=lambda r: (-r.severity.rank, r.id)).finding
        references = sorted({ref for r in members for ref in r.finding.references})
        rules.append(
            Rule(
                id=rule,
                tool=first.tool,
                title=titles[rule],
                severity=affected[0].severity,
                description=first.description,
                remediation=_remediation(first),
                references=tuple(references),
                affected=tuple(affected),
            )
        )
    rules.sort(key=lambda g: (-g.severity.rank, -len(g.affected), g.id))
    counts: dict[str, int] = defaultdict(int)
    for r in included:
        if r.state is FindingState.OPEN:
            counts[r.severity.value] += 1
    return Snapshot(
        schema=SNAPSHOT_SCHEMA,
        report_id=cmd.report_id,
        generated_at=at,
        jetscan_version=VERSION,
        subject=Subject(
            kind="scans"
            if cmd.scan_ids
            else "schedule"
            if cmd.schedule_id
            else "domain"
            if cmd.domain
            else "target",
            scan_ids=cmd.scan_ids,
            domain=cmd.domain,
            target=cmd.target,
            schedule_id=cmd.schedule_id,
        ),
        options=cmd.options,
        scans=tuple(sorted(scans, key=lambda s: (s.target, s.tool, s.created_at, s.id))),
        counts=Counts(**counts),
        changes=_changes(included, scans),
        excluded_triaged=len(kept) - len(included),
        rules=tuple(rules),
    )


def _changes(rows: list[Row], scans: list[ScanSummary]) -> tuple[TargetChanges, ...]:
    tally: dict[tuple[str, str], dict[str, int]] = {
        (s.target, s.tool): defaultdict(int) for s in scans
    }
    ids = {(s.target, s.tool): s.id for s in scans}
    for r in rows:
        key = (r.target, r.finding.tool)
        tally.setdefault(key, defaultdict(int))[r.change.value] += 1
        ids.setdefault(key, r.scan_id)
    return tuple(
        TargetChanges(
            target=target,
            tool=tool,
            scan_id=ids[(target, tool)],
            new=t["new"],
            unchanged=t["unchanged"],
            reopened=t["reopened"],
            fixed=t["fixed"],
        )
        for (target, tool), t in sorted(tally.items())
    )
