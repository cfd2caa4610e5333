"""The CSV format: one row per finding and location, never truncated; a cell a spreadsheet
would take for a formula is neutralised with a leading apostrophe."""

from __future__ import annotations

import csv
import io

from contracts.reports import Frozen

COLUMNS = (
    "snapshot_sha256",
    "rule_id",
    "rule_title",
    "tool",
    "severity",
    "scanner_severity",
    "title",
    "state",
    "change",
    "triage",
    "target",
    "host",
    "port",
    "protocol",
    "url",
    "uri",
    "first_seen",
    "last_seen",
    "fingerprint",
    "finding_id",
    "scan_id",
    "description",
    "remediation",
    "references",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def render(frozen: Frozen) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for rule in frozen.snapshot.rules:
        for a in rule.affected:
            row = (
                frozen.sha256,
                rule.id,
                rule.title,
                rule.tool,
                a.severity.value,
                a.scanner_severity.value,
                a.title,
                a.state.value,
                a.change.value,
                a.triage.value,
                a.target,
                a.host,
                a.port,
                a.protocol,
                a.url,
                a.uri,
                a.first_seen.isoformat(),
                a.last_seen.isoformat(),
                a.fingerprint,
                a.finding_id,
                a.scan_id,
                a.description,
                rule.remediation,
                " ".join(rule.references),
            )
            writer.writerow([cell(v) for v in row])
    return out.getvalue().encode()
