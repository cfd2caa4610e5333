"""The renderers on snapshots built by the snapshot module's pure half: every format's
promises (schema, keys, neutralised cells, literal hostile text, byte-identical re-renders)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import subprocess
from pathlib import Path

import jsonschema
import msgspec
import pytest

from contracts.findings import Severity
from contracts.reports import Frozen, ReportFormat, Snapshot, freeze, thaw
from contracts.tracking import Change
from handlers.reports import defectdojo, pdf
from handlers.reports.render import render, render_stored
from handlers.reports.snapshot import assemble
from handlers.reports.versions import scanner_version
from tests.conftest import ROOT
from tests.handlers import reportdata
from tests.handlers.reportdata import AT, HOSTILE, LONG, command, hostile, row, scan
from tests.snapshots import assert_snapshot

SARIF_SCHEMA = ROOT.parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"
# DefectDojo's Generic Findings Import (dojo/tools/generic/json_parser.py): it rejects a
# finding with any other key (STACK.md, "Checked for the next capabilities").
DOJO_REQUIRED = {"title", "severity", "description"}
DOJO_ALLOWED = DOJO_REQUIRED | set(
    [
        "date",
        "cwe",
        "cve",
        "epss_score",
        "epss_percentile",
        "cvssv3",
        "cvssv3_score",
        "cvssv4",
        "cvssv4_score",
        "mitigation",
        "impact",
        "steps_to_reproduce",
        "severity_justification",
        "references",
        "active",
        "verified",
        "false_p",
        "out_of_scope",
        "risk_accepted",
        "under_review",
        "is_mitigated",
        "thread_id",
        "mitigated",
        "numerical_severity",
        "param",
        "payload",
        "line",
        "file_path",
        "component_name",
        "component_version",
        "static_finding",
        "dynamic_finding",
        "scanner_confidence",
        "unique_id_from_tool",
        "vuln_id_from_tool",
        "sast_source_object",
        "sast_sink_object",
        "sast_source_line",
        "sast_source_file_path",
        "nb_occurences",
        "publish_date",
        "service",
        "planned_remediation_date",
        "planned_remediation_version",
        "effort_for_fixing",
        "tags",
        "kev_date",
        "known_exploited",
        "ransomware_used",
        "fix_available",
        "fix_version",
        "endpoints",
        "files",
        "vulnerability_ids",
        "cwes",
    ]
)
DOJO_TOP = {"name", "type", "version", "description", "dynamic_tool", "static_tool", "soc"}
DOJO_TOP |= {"findings"}


def frozen(partial: bool = False) -> Frozen:
    return freeze(hostile(partial=partial))[1]


@pytest.mark.parametrize("fmt", [f for f in ReportFormat if f is not ReportFormat.PDF])
def test_a_stored_snapshot_renders_byte_identical_and_names_its_sha256(fmt: ReportFormat) -> None:
    data, snap = freeze(hostile())
    first = render(fmt, snap)
    assert render_stored(fmt.value, data) == first
    assert snap.sha256.encode() in first


def test_the_json_report_follows_its_published_schema() -> None:
    """docs/report-snapshot.schema.json is the schema of `snapshot` in the JSON format; a
    change to the snapshot's shape shows there (and needs a new SNAPSHOT_SCHEMA version)."""
    schema = msgspec.json.schema(Snapshot)
    path = ROOT / "docs" / "report-snapshot.schema.json"
    assert_snapshot(path, msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n")
    doc = json.loads(render(ReportFormat.JSON, frozen()))
    jsonschema.validators.validator_for(schema)(schema).validate(doc["snapshot"])
    assert doc["snapshot"]["schema"] == "jetscan.report.snapshot/1"


def test_equal_data_in_any_order_gives_equal_snapshots() -> None:
    rows = [row(i, severity=list(Severity)[i % 5], title=f"Check {i % 3}") for i in range(30)]
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    a = freeze(assemble(command(), AT, [scan("scan-1")], rows))
    b = freeze(assemble(command(), AT, [scan("scan-1")], shuffled))
    assert a[0] == b[0]
    assert thaw(a[0]).sha256 == a[1].sha256


def test_snapshot_groups_by_rule_counts_and_leaves_out_triaged() -> None:
    snap = hostile()
    assert snap.excluded_triaged == 1
    assert all(a.title != "Ignored" for r in snap.rules for a in r.affected)
    # Open findings by severity: the fixed medium is not counted.
    assert (snap.counts.high, snap.counts.medium, snap.counts.info) == (1, 0, 7)
    assert snap.rules[0].id == "zap/10010"
    grouped = assemble(command(), AT, [], [row(1, title="TLS 1.0"), row(2, title="TLS 1.0")])
    assert [len(r.affected) for r in grouped.rules] == [2]
    assert [a.uri for a in grouped.rules[0].affected] == [
        "tcp://127.0.0.1:1001",
        "tcp://127.0.0.1:1002",
    ]
    high = assemble(command(min_severity=Severity.HIGH), AT, [], [row(1), row(2)])
    assert high.rules == ()


def test_sarif_is_valid_with_one_run_per_tool_and_no_secrets() -> None:
    snap = frozen()
    doc = json.loads(render(ReportFormat.SARIF, snap))
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(doc)
    assert [r["tool"]["driver"]["name"] for r in doc["runs"]] == ["nmap", "zap"]
    zap = doc["runs"][1]
    [rule] = zap["tool"]["driver"]["rules"]
    assert rule["properties"]["security-severity"] == "8.0"
    assert rule["help"]["text"] == "Set the HttpOnly flag."
    [result] = zap["results"]
    assert result["level"] == "error"
    assert result["baselineState"] == "new"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith(
        "https://127.0.0.1:8443/"
    )
    text = json.dumps(doc)
    assert "SECRET123" not in text and "TOKEN456" not in text
    assert "Set-Cookie: [redacted]" in text
    nmap = {r["message"]["text"].split(":")[0]: r for r in doc["runs"][0]["results"]}
    assert nmap["TLS 1.0 accepted"]["baselineState"] == "absent"
    results = doc["runs"][0]["results"]
    fingerprints = {r["partialFingerprints"]["jetscanFingerprint/v1"] for r in results}
    assert len(fingerprints) == len(results)
    assert all(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("tcp://")
        for r in doc["runs"][0]["results"]
    )


def test_defectdojo_keys_ids_and_a_description_stable_across_scans() -> None:
    doc = json.loads(render(ReportFormat.DEFECTDOJO, frozen()))
    assert set(doc) <= DOJO_TOP
    for finding in doc["findings"]:
        assert DOJO_REQUIRED <= set(finding) <= DOJO_ALLOWED, set(finding) - DOJO_ALLOWED
        assert finding["severity"] in {"Critical", "High", "Medium", "Low", "Info"}
    ids = [f["unique_id_from_tool"] for f in doc["findings"]]
    assert len(set(ids)) == len(ids)
    snap = hostile()
    by_fp = {a.fingerprint: (r, a) for r in snap.rules for a in r.affected}
    for f in doc["findings"]:
        rule, _ = by_fp[f["unique_id_from_tool"]]
        assert f["vuln_id_from_tool"] == rule.id
    # The next scan of the same finding: seen later, unchanged, by another scan.
    later = assemble(command(), AT, [], [row(1, change=Change.UNCHANGED)])
    first = assemble(command(), AT, [], [row(1)])
    r1, a1 = first.rules[0], first.rules[0].affected[0]
    r2, a2 = later.rules[0], later.rules[0].affected[0]
    assert defectdojo.description(r1, a1) == defectdojo.description(r2, a2)


def test_csv_has_a_row_per_finding_and_neutralises_formulas() -> None:
    snap = frozen()
    rows = list(csv.DictReader(io.StringIO(render(ReportFormat.CSV, snap).decode())))
    assert len(rows) == sum(len(r.affected) for r in snap.snapshot.rules)
    titles = {r["title"] for r in rows}
    assert "'=cmd|' /C calc'!A0" in titles
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    assert {r["snapshot_sha256"] for r in rows} == {snap.sha256}
    assert any(r["description"] == LONG for r in rows)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    )
    return out.stdout


def pdf_fonts(tmp_path: Path) -> str:
    out = subprocess.run(
        ["pdffonts", str(tmp_path / "report.pdf")], check=True, capture_output=True, text=True
    )
    return out.stdout


def squeeze(text: str) -> str:
    # ZWSP are the PDF's break opportunities.
    return re.sub(r"[\s\u200b]+", "", text)


def extractable(text: str) -> str:
    """`text` as pdftotext can read it back from the PDF: bidi controls shown as marks,
    color emoji (Type 3 glyphs) and their variation selectors absent."""
    return squeeze(re.sub("[\U0001f000-\U0001faff\ufe0f]", "", pdf.shown(text)))


def test_pdf_shows_hostile_text_literally_and_re_renders_identically(tmp_path: Path) -> None:
    data, snap = freeze(hostile(partial=True))
    first = render(ReportFormat.PDF, snap)
    assert render_stored("pdf", data) == first
    text = pdf_text(first, tmp_path)
    flat = squeeze(text)
    for case in HOSTILE:
        if "\u202e" in case:
            # The override is shown as a mark instead of reordering the text after it.
            assert "rtl ⟨U+202E⟩evil⟨U+202C⟩ override" in text
        elif "🔥" in case:
            # Color emoji are drawn as Type 3 glyphs, which pdftotext does not read back.
            assert "Service banner emoji" in text
            assert "Type 3" in pdf_fonts(tmp_path)
        else:
            assert squeeze(case) in flat, case
    # The 10 kB string wraps instead of running off the page (across pages: without the
    # running header and footer between them).
    body = [line for line in text.splitlines() if "sha256" not in line and "rep-1" not in line]
    assert LONG in squeeze("".join(body))
    assert "Evidence cut at 600 characters per field: banner (10,004 characters)" in text
    assert "root:x:0" not in text  # nothing was read from a file
    assert "Incomplete results" in text and "nmap stopped early" in text
    for rule in snap.snapshot.rules:
        for a in rule.affected:
            assert extractable(a.title) in flat
            assert squeeze(a.uri) in flat  # host and port, or the URL
    assert snap.sha256 in text
    assert re.search(r"Page 2 of \d+", text)


def test_pdf_shortens_beyond_the_limit_per_severity(tmp_path: Path) -> None:
    per = pdf.DETAIL_LIMIT + 15
    snap = freeze(reportdata.sized(per * 5))[1]
    text = pdf_text(render(ReportFormat.PDF, snap), tmp_path)
    assert text.count("This report shortened 15") == 5
    assert f"Critical ({per})" in text


def test_top_risks_are_the_open_findings_the_counts_count(tmp_path: Path) -> None:
    """A fixed finding is in the report (what changed) but not among its risks: the summary's
    top risks list open places only, as its counts do."""
    rows = [
        row(1, severity=Severity.CRITICAL, title="Fixed since", change=Change.FIXED),
        row(2, severity=Severity.HIGH, title="Half fixed", change=Change.FIXED),
        row(3, severity=Severity.HIGH, title="Half fixed", change=Change.UNCHANGED),
        row(4, severity=Severity.MEDIUM, title="Still open", change=Change.NEW),
        row(5, severity=Severity.MEDIUM, title="Still open", change=Change.UNCHANGED),
        row(6, title="Open port"),
    ]
    frozen = freeze(assemble(command(), AT, [scan("scan-1")], rows))[1]
    top = pdf.view(frozen)["top"]
    assert [(t["severity"], t["title"], t["places"]) for t in top] == [
        ("high", "Half fixed", 1),
        ("medium", "Still open", 2),
    ]
    counts = frozen.snapshot.counts
    assert (counts.critical, counts.high, counts.medium) == (0, 1, 2)
    assert sum(t["places"] for t in top) == counts.high + counts.medium
    text = pdf_text(render(ReportFormat.PDF, frozen), tmp_path)
    summary = text[text.index("Top risks") : text.index("By target")]
    assert "Half fixed" in summary and "Still open" in summary
    assert "Fixed since" not in summary
    assert "Fixed since" in text  # still listed among the findings, as fixed
    assert "Critical (0 open, 1 fixed)" in text and "High (1 open, 1 fixed)" in text
    assert "Medium (2)" in text


def test_titles_differing_only_in_other_scripts_are_different_rules() -> None:
    rows = [row(1, title="Service banner 中文"), row(2, title="Service banner 日本語")]
    snap = assemble(command(), AT, [scan("scan-1")], rows)
    assert sorted(r.id for r in snap.rules) == [
        "nmap/service-banner-中文",
        "nmap/service-banner-日本語",
    ]


@pytest.mark.parametrize(
    ("tool", "head", "version"),
    [
        ("nmap", ["", "Starting Nmap 7.93 ( https://nmap.org ) at 2026-12-02 11:22 UTC"], "7.93"),
        ("nmap", ["Nmap scan report for localhost"], ""),
        ("sslyze", ["Starting Nmap 7.93 ( https://nmap.org )"], ""),
    ],
)
def test_scanner_versions_come_from_the_console_where_it_names_them(
    tool: str, head: list[str], version: str
) -> None:
    assert scanner_version(tool, head) == version
