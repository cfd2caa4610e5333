"""The SARIF 2.1.0 format: one run per tool, its rules with `security-severity`, each result
located by URI and carrying the jetscan fingerprint and its baseline state."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.findings import Severity
from contracts.reports import Affected, Frozen, Rule
from contracts.tracking import Change

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT = "jetscanFingerprint/v1"

LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning's bands: >= 9.0 critical, >= 7.0 high, >= 4.0 medium, > 0 low.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.INFO: "0.0",
}
# A reopened finding was absent from the baseline (fixed there): new again.
BASELINE = {
    Change.NEW: "new",
    Change.REOPENED: "new",
    Change.UNCHANGED: "unchanged",
    Change.FIXED: "absent",
}

_encoder = msgspec.json.Encoder(order="deterministic")


def _rule(rule: Rule) -> dict[str, Any]:
    text = rule.description or rule.title
    entry: dict[str, Any] = {
        "id": rule.id,
        "name": rule.title,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": text},
        "help": {"text": rule.remediation or text},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "tags": ["security"],
        },
    }
    if rule.references:
        entry["helpUri"] = rule.references[0]
    return entry


def _result(rule: Rule, index: int, a: Affected) -> dict[str, Any]:
    message = a.title if not a.description else f"{a.title}: {a.description}"
    return {
        "ruleId": rule.id,
        "ruleIndex": index,
        "level": LEVEL[a.severity],
        "kind": "pass" if a.change is Change.FIXED else "fail",
        "message": {"text": message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": a.uri}}}],
        "partialFingerprints": {FINGERPRINT: a.fingerprint},
        "baselineState": BASELINE[a.change],
        "properties": {
            "severity": a.severity.value,
            "scannerSeverity": a.scanner_severity.value,
            "state": a.state.value,
            "triage": a.triage.value,
            "target": a.target,
            "firstSeen": a.first_seen.isoformat(),
            "lastSeen": a.last_seen.isoformat(),
            "findingId": a.finding_id,
            "scanId": a.scan_id,
            "evidence": a.evidence,
        },
    }


def render(frozen: Frozen) -> bytes:
    snap = frozen.snapshot
    by_tool: dict[str, list[Rule]] = {}
    for rule in snap.rules:
        by_tool.setdefault(rule.tool, []).append(rule)
    for scan in snap.scans:
        by_tool.setdefault(scan.tool, [])
    versions = {s.tool: s.scanner_version for s in snap.scans if s.scanner_version}
    runs = []
    for tool in sorted(by_tool):
        rules = sorted(by_tool[tool], key=lambda r: r.id)
        driver: dict[str, Any] = {
            "name": tool,
            "fullName": f"{tool} via jetscan {snap.jetscan_version}",
            "rules": [_rule(r) for r in rules],
        }
        if tool in versions:
            driver["version"] = versions[tool]
        runs.append(
            {
                "tool": {"driver": driver},
                "automationDetails": {"id": f"jetscan/{snap.report_id}/{tool}"},
                "results": [_result(r, i, a) for i, r in enumerate(rules) for a in r.affected],
                "properties": {
                    "snapshotSha256": frozen.sha256,
                    "reportId": snap.report_id,
                    "scanIds": [s.id for s in snap.scans if s.tool == tool],
                    "partialScans": [s.id for s in snap.scans if s.tool == tool and s.partial],
                },
            }
        )
    log = {"$schema": SCHEMA, "version": "2.1.0", "runs": runs}
    return msgspec.json.format(_encoder.encode(log), indent=2) + b"\n"
