"""How `jetscan scan ...` shows scans and findings to people: aligned plain-text columns.

Timestamps are ISO 8601 in UTC to the second; statuses and severities lower-case without
their proto prefix; "-" marks an empty value so every column stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import betterproto2

from contracts.gen.jetscan import v1
from edge.convert import plain

Rows = tuple[Sequence[str], list[list[str]]]
_FINGERPRINT_SHOWN = 12  # enough to tell findings apart, short enough for a terminal


def status_name(status: v1.ScanStatus) -> str:
    return _enum_name(v1.ScanStatus, status)


def _enum_name(enum: type[betterproto2.Enum], value: int) -> str:
    # A newer edge may send a value this client does not know; show it rather than crash.
    try:
        name = enum(value).name
    except ValueError:
        name = None
    return name.lower() if name else str(int(value))


def timestamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines) + "\n"


def _counts(scan: v1.Scan) -> str:
    c = scan.finding_counts or v1.FindingCounts()
    return f"{c.critical}/{c.high}/{c.medium}/{c.low}/{c.info}"


SCAN_HEADERS = ("ID", "STATUS", "TOOL", "TARGET", "CREATED", "FINISHED", "EXIT", "C/H/M/L/I")
FINDING_HEADERS = ("SEVERITY", "TITLE", "HOST", "PORT", "FINGERPRINT")


def scan_rows(scans: Sequence[v1.Scan]) -> Rows:
    rows = [
        [
            s.id,
            status_name(s.status),
            s.tool,
            s.target,
            timestamp(s.created_at),
            timestamp(s.finished_at),
            "-" if s.exit_code is None else str(s.exit_code),
            _counts(s),
        ]
        for s in scans
    ]
    return SCAN_HEADERS, rows


def finding_rows(findings: Sequence[v1.Finding]) -> Rows:
    rows = [
        [
            _enum_name(v1.Severity, f.severity),
            f.title,
            f.host or "-",
            f"{f.port}/{f.protocol}" if f.port else "-",
            f.fingerprint[:_FINGERPRINT_SHOWN],
        ]
        for f in findings
    ]
    return FINDING_HEADERS, rows


def scan_details(scan: v1.Scan, *, status: str = "") -> str:
    """One `name  value` line per field; `status` replaces the scan's own (`cancelling`)."""
    config = plain(scan.config.to_dict()) if scan.config is not None else {}
    fields = [
        ("id", scan.id),
        ("status", status or status_name(scan.status)),
        ("tool", scan.tool),
        ("target", scan.target),
        ("domain", scan.domain or "-"),
        ("config", json.dumps(config, separators=(",", ":"), sort_keys=True)),
        ("created", timestamp(scan.created_at)),
        ("started", timestamp(scan.started_at)),
        ("finished", timestamp(scan.finished_at)),
        ("exit code", "-" if scan.exit_code is None else str(scan.exit_code)),
        ("error", scan.error or "-"),
        ("findings C/H/M/L/I", _counts(scan)),
        ("deadline", f"{scan.deadline_seconds}s" if scan.deadline_seconds else "tool default"),
        ("requested by", scan.requested_by or "-"),
        ("via", scan.trigger or "-"),
        ("schedule", scan.schedule_id or "-"),
    ]
    width = max(len(k) for k, _ in fields)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in fields)
