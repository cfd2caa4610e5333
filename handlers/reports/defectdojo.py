"""DefectDojo's Generic Findings Import (JSON): only the keys its parser accepts (it rejects
any other), one finding per place, identified by the jetscan fingerprint.

The description is built from what does not change while a finding stays the same (rule,
place, scanner text): DefectDojo hashes it to deduplicate, so no dates, scan ids or changes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec

from contracts.findings import Severity
from contracts.reports import Affected, Frozen, Rule
from contracts.tracking import FindingState, Triage

SEVERITY = {
    Severity.CRITICAL: "Critical",
    Severity.HIGH: "High",
    Severity.MEDIUM: "Medium",
    Severity.LOW: "Low",
    Severity.INFO: "Info",
}
NUMERICAL = {
    Severity.CRITICAL: "S0",
    Severity.HIGH: "S1",
    Severity.MEDIUM: "S2",
    Severity.LOW: "S3",
    Severity.INFO: "S4",
}

_encoder = msgspec.json.Encoder(order="deterministic")


def _endpoint(a: Affected) -> dict[str, Any]:
    if a.url:
        try:
            parts = urlsplit(a.url)
            endpoint: dict[str, Any] = {"protocol": parts.scheme, "host": parts.hostname or a.host}
            if parts.port:
                endpoint["port"] = parts.port
            if parts.path:
                endpoint["path"] = parts.path.lstrip("/")
            return endpoint
        except ValueError:
            pass
    endpoint = {"host": a.host or a.target}
    if a.port is not None:
        endpoint["port"] = a.port
    return endpoint


def description(rule: Rule, a: Affected) -> str:
    lines = [f"Rule: {rule.id} ({rule.title})", f"Location: {a.uri}", f"Target: {a.target}"]
    if rule.description:
        lines += ["", rule.description]
    if a.description and a.description != rule.description:
        lines += ["", a.description]
    return "\n".join(lines)


def _finding(rule: Rule, a: Affected) -> dict[str, Any]:
    item: dict[str, Any] = {
        "title": a.title,
        "severity": SEVERITY[a.severity],
        "numerical_severity": NUMERICAL[a.severity],
        "description": description(rule, a),
        "date": a.first_seen.date().isoformat(),
        "unique_id_from_tool": a.fingerprint,
        "vuln_id_from_tool": rule.id,
        "active": a.state is FindingState.OPEN,
        "is_mitigated": a.state is FindingState.FIXED,
        "false_p": a.triage is Triage.FALSE_POSITIVE,
        "risk_accepted": a.triage is Triage.ACCEPTED_RISK,
        "dynamic_finding": True,
        "static_finding": False,
        "endpoints": [_endpoint(a)],
    }
    if rule.remediation:
        item["mitigation"] = rule.remediation
    if rule.references:
        item["references"] = "\n".join(rule.references)
    cwe = a.evidence.get("cwe_id")
    if isinstance(cwe, int) and cwe > 0:
        item["cwe"] = cwe
    vuln = a.evidence.get("id")
    if isinstance(vuln, str) and vuln.startswith("CVE-"):
        item["cve"] = vuln
    param = a.evidence.get("param")
    if isinstance(param, str) and param:
        item["param"] = param
    return item


def render(frozen: Frozen) -> bytes:
    snap = frozen.snapshot
    doc = {
        "name": f"jetscan report {snap.report_id}",
        "type": "jetscan",
        "version": snap.jetscan_version,
        "description": f"jetscan snapshot sha256 {frozen.sha256}",
        "dynamic_tool": True,
        "static_tool": False,
        "findings": [_finding(r, a) for r in snap.rules for a in r.affected],
    }
    return msgspec.json.format(_encoder.encode(doc), indent=2) + b"\n"
