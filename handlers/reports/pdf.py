"""The PDF format: `report.typ` compiled by typst, with the data as JSON in `sys_inputs`.

Nothing from a scan is ever formatted into typst markup: the template reads strings from the
JSON and places them as text. What this module does to text is for display only: bidi
controls become visible marks (a right-to-left override would otherwise reorder the text
around it), long unbroken runs get break opportunities, and long evidence is cut with a note.
Re-rendering is byte-identical: the document date is the snapshot's, fonts come from fixed
folders, and nothing is read from the clock or the environment.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import typst

from contracts.findings import Severity
from contracts.reports import Affected, Frozen, Rule, Snapshot
from contracts.tracking import FindingState

TEMPLATE = Path(__file__).with_name("report.typ")
# Debian's fonts-noto-core, fonts-noto-cjk and fonts-noto-color-emoji (Makefile: system-deps).
FONT_PATHS = ("/usr/share/fonts/truetype/noto", "/usr/share/fonts/opentype/noto")

# Findings per severity shown in full (description, evidence); the rest go into a compact
# table, so a report of 10,000 findings stays a document someone reads.
DETAIL_LIMIT = 60
# Places listed per rule in full; evidence shown for the first few of them.
EVIDENCE_PLACES = 3
EVIDENCE_CHARS = 600
TOP_RISKS = 8
# typst keeps the whole document in memory: ~1 GB for 10,000 findings. Beyond this a PDF is
# refused (the report fails saying so); the other formats have no limit.
MAX_FINDINGS = 15_000
CHANGE_ROWS = 15

SEVERITY_TEXT = {
    Severity.CRITICAL: "Exploitable now or exposing the system entirely; fix immediately.",
    Severity.HIGH: "A serious weakness an attacker can likely use; fix within days.",
    Severity.MEDIUM: "A weakness that needs other conditions to be exploited; plan a fix.",
    Severity.LOW: "Hardening: limited impact on its own.",
    Severity.INFO: "An observation (an open port, a name, a service) for the inventory.",
}

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_RUN = re.compile(r"\S{40,}")


def shown(text: str) -> str:
    """`text` as the PDF shows it: invisible controls made visible, long runs breakable."""
    text = _BIDI.sub(lambda m: f"\u27e8U+{ord(m[0]):04X}\u27e9", text)
    text = _CONTROL.sub(lambda m: f"\u27e8U+{ord(m[0]):04X}\u27e9", text)
    return _RUN.sub(lambda m: "\u200b".join(textwrap.wrap(m[0], 20)), text)


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _evidence(a: Affected) -> dict[str, str]:
    """One `field: value` line per evidence field, each value cut at EVIDENCE_CHARS."""
    lines, cut = [], []
    for key in sorted(a.evidence):
        value = a.evidence[key]
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value, ensure_ascii=False, sort_keys=True)
        )
        if len(text) > EVIDENCE_CHARS:
            cut.append(f"{key} ({len(text):,} characters)")
            text = text[:EVIDENCE_CHARS] + " …"
        lines.append(f"{key}: {text}")
    note = ""
    if cut:
        note = (
            f"Evidence cut at {EVIDENCE_CHARS:,} characters per field: {', '.join(cut)};"
            " the JSON report has all of it."
        )
    return {"text": shown("\n".join(lines)), "note": shown(note)}


def _place(rule: Rule, a: Affected, evidence: bool) -> dict[str, Any]:
    return {
        "uri": shown(a.uri),
        "title": shown(a.title) if a.title != rule.title else "",
        "detail": shown(a.description) if a.description != rule.description else "",
        "severity": a.severity.value,
        "status": status(a),
        "triage": "" if a.triage.value == "none" else a.triage.value.replace("_", " "),
        "first_seen": _when(a.first_seen),
        "last_seen": _when(a.last_seen),
        "fingerprint": a.fingerprint,
        "evidence": _evidence(a) if evidence else {"text": "", "note": ""},
    }


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": shown(rule.id),
        "tool": rule.tool,
        "title": shown(rule.title),
        "severity": rule.severity.value,
        "description": shown(rule.description),
        "remediation": shown(rule.remediation),
        "references": [shown(r) for r in rule.references],
        "places": [_place(rule, a, i < EVIDENCE_PLACES) for i, a in enumerate(rule.affected)],
    }


def status(a: Affected) -> str:
    """A place's state and what the report's scans changed about it, in a few words:
    "open, new", "open, unchanged", "open, reopened", or "fixed"."""
    if a.state is FindingState.FIXED:
        return "fixed"
    return f"open, {a.change.value}"


def _compact(rule: Rule, a: Affected) -> list[str]:
    return [shown(a.title), f"{shown(a.uri)} · {status(a)}"]


def _sections(snap: Snapshot) -> list[dict[str, Any]]:
    sections = []
    for severity in reversed(Severity):
        rules = [r for r in snap.rules if r.severity is severity]
        if not rules:
            continue
        detailed, compact = [], []
        budget = DETAIL_LIMIT
        for rule in rules:
            if budget > 0:
                shown_rule = _rule(rule)
                shown_rule["places"] = shown_rule["places"][:budget]
                detailed.append(shown_rule)
                compact += [_compact(rule, a) for a in rule.affected[budget:]]
                budget -= len(rule.affected)
            else:
                compact += [_compact(rule, a) for a in rule.affected]
        sections.append(
            {
                "severity": severity.value,
                "findings": sum(len(r.affected) for r in rules),
                # Fixed places are listed (what changed) but not counted as open ones.
                "fixed": sum(a.state is FindingState.FIXED for r in rules for a in r.affected),
                "rules": detailed,
                "compact": compact,
            }
        )
    return sections


def _subject(snap: Snapshot) -> str:
    s = snap.subject
    if s.kind == "scans":
        return f"{len(s.scan_ids)} scan(s): {', '.join(s.scan_ids)}"
    if s.kind == "schedule":
        return f"the latest scan of schedule {s.schedule_id}"
    return f"{s.kind} {s.domain or s.target}, findings as they stand"


def top_risks(snap: Snapshot) -> list[dict[str, Any]]:
    """The rules most worth fixing, as the summary's counts see them: open places only (a
    fixed one is no risk), at the most severe open place's severity, informational left out."""
    top = []
    for rule in snap.rules:
        places = [a for a in rule.affected if a.state is FindingState.OPEN]
        if not places:
            continue
        severity = max((a.severity for a in places), key=lambda s: s.rank)
        if severity is not Severity.INFO:
            top.append((severity, len(places), rule))
    top.sort(key=lambda t: (-t[0].rank, -t[1], t[2].id))
    return [
        {"severity": severity.value, "title": shown(rule.title), "places": n}
        for severity, n, rule in top[:TOP_RISKS]
    ]


def view(frozen: Frozen) -> dict[str, Any]:
    """The template's input: everything it shows, already worded."""
    snap = frozen.snapshot
    all_places = [a for r in snap.rules for a in r.affected]
    changes = Counter(a.change.value for a in all_places)
    since = snap.options.since
    return {
        "report_id": snap.report_id,
        "sha256": frozen.sha256,
        "version": snap.jetscan_version,
        "generated": _when(snap.generated_at),
        "subject": shown(_subject(snap)),
        "since": _when(since) if since else "",
        "min_severity": snap.options.min_severity.value,
        "include_triaged": snap.options.include_triaged,
        "excluded_triaged": snap.excluded_triaged,
        "targets": sorted({shown(s.target) for s in snap.scans}),
        "counts": [
            {"severity": s.value, "n": getattr(snap.counts, s.value)} for s in reversed(Severity)
        ],
        "open": sum(getattr(snap.counts, s.value) for s in Severity),
        "fixed": changes["fixed"],
        "totals": {k: changes[k] for k in ("new", "unchanged", "reopened", "fixed")},
        "changes": [
            {
                "target": shown(c.target),
                "tool": c.tool,
                "new": c.new,
                "unchanged": c.unchanged,
                "reopened": c.reopened,
                "fixed": c.fixed,
            }
            for c in snap.changes[:CHANGE_ROWS]
        ],
        "more_changes": max(0, len(snap.changes) - CHANGE_ROWS),
        "top": top_risks(snap),
        "scans": [
            {
                "id": s.id,
                "tool": s.tool,
                "target": shown(s.target),
                "status": s.status,
                "started": _when(s.started_at or s.created_at),
                "duration": "" if s.duration_seconds is None else f"{s.duration_seconds:.1f} s",
                "exit_code": "" if s.exit_code is None else str(s.exit_code),
                "partial": s.partial,
                "error": shown(s.error),
                "version": shown(s.scanner_version) or "not recorded",
                "options": shown(json.dumps(s.config, sort_keys=True, ensure_ascii=False))
                if s.config
                else "",
            }
            for s in snap.scans
        ],
        "sections": _sections(snap),
        "detail_limit": DETAIL_LIMIT,
        "definitions": [
            {"severity": s.value, "text": SEVERITY_TEXT[s]} for s in reversed(Severity)
        ],
    }


class TooLarge(ValueError):
    """More findings than a PDF may hold."""


def render(frozen: Frozen) -> bytes:
    n = sum(len(r.affected) for r in frozen.snapshot.rules)
    if n > MAX_FINDINGS:
        raise TooLarge(
            f"a PDF lists at most {MAX_FINDINGS:,} findings and this report has {n:,}: raise"
            " the minimum severity, or use JSON, SARIF or CSV, which are never shortened"
        )
    data = json.dumps(view(frozen), ensure_ascii=False, separators=(",", ":"))
    pdf: bytes = typst.compile(
        str(TEMPLATE),
        sys_inputs={"data": data},
        font_paths=list(FONT_PATHS),
        timestamp=int(frozen.snapshot.generated_at.timestamp()),
    )
    return pdf
