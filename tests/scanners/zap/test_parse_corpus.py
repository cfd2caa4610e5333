"""The ZAP parser over every ZAP report in the shared corpus, compared to snapshots.

Each snapshot holds the report's shape (format, version, sites, alerts, instances) and every
finding, or the `ParseError`'s reason for a file that is refused.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts.findings import Finding
from contracts.zap import ZapReport
from scanners.errors import ParseError
from scanners.output import ToolOutput
from scanners.zap.parse import parse, parse_stream
from tests.corpus import (
    cases,
    corpus_file,
    require,
    snapshot_bytes,
    snapshot_names,
    summary_or_error,
)
from tests.snapshots import assert_no_orphans, assert_snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"


def report(output: ToolOutput) -> ZapReport:
    assert isinstance(output.data, ZapReport)
    return output.data


# What every finding of one rule repeats; a snapshot holds it once per rule, in `rules`.
RULE_FIELDS = ("title", "severity", "description", "references")
RULE_EVIDENCE = (
    "plugin_id",
    "alert_ref",
    "confidence",
    "cwe_id",
    "wasc_id",
    "solution",
    "other_info",
)


def summary(output: ToolOutput) -> dict[str, Any]:
    """The report's shape and every field of every finding, each rule's texts written once."""
    data = report(output)
    alerts = [alert for site in data.sites for alert in site.alerts]
    rules: list[dict[str, Any]] = []
    findings = []
    for finding in msgspec.to_builtins(output.findings):
        rule = {name: finding.pop(name) for name in RULE_FIELDS}
        rule |= {name: finding["evidence"].pop(name, None) for name in RULE_EVIDENCE}
        if rule not in rules:
            rules.append(rule)
        findings.append({"rule": rules.index(rule), **finding})
    return {
        "format": data.format,
        "version": data.version,
        "program_name": data.program_name,
        "sites": [site.name for site in data.sites],
        "alert_count": len(alerts),
        "instance_count": sum(len(alert.instances) for alert in alerts),
        "partial": output.partial,
        "severity_counts": dict(collections.Counter(f.severity.value for f in output.findings)),
        "rules": rules,
        "findings": findings,
    }


@pytest.mark.parametrize("path", cases("zap"))
def test_corpus_file_matches_its_snapshot(path: Path | None) -> None:
    path = require(path, "zap/*")
    document = summary_or_error(parse, summary, path.read_bytes())
    assert_snapshot(SNAPSHOTS / f"{path.name}.json", snapshot_bytes(document))


def test_every_snapshot_has_its_corpus_file() -> None:
    assert_no_orphans(SNAPSHOTS, snapshot_names("zap"))


@pytest.mark.parametrize("path", cases("zap"))
def test_corpus_file_parses_the_same_streamed_and_survives_the_bus(path: Path | None) -> None:
    path = require(path, "zap/*")
    with path.open("rb") as stream:
        streamed = parse_stream(stream)
    assert streamed == parse(path.read_bytes())
    wire = msgspec.json.encode(streamed)
    assert msgspec.json.decode(wire, type=ToolOutput) == streamed
    for finding in msgspec.json.decode(wire, type=dict[str, Any])["findings"]:
        msgspec.convert(finding, Finding)
    assert len({f.fingerprint for f in streamed.findings}) == len(streamed.findings)


def test_every_corpus_report_is_read() -> None:
    """No corpus file is refused: all are real ZAP output or ZAP's own template fixtures."""
    refused = []
    for path in corpus_file("zap/zap-ext__basic-traditional-xml.xml").parent.iterdir():
        try:
            parse(path.read_bytes())
        except ParseError as exc:
            refused.append(f"{path.name}: {exc.reason}")
    assert refused == []


def test_the_same_template_reads_alike_as_json_and_xml() -> None:
    """ZAP's "plus" template fixtures hold the same alert in both formats."""
    from_json = parse(corpus_file("zap/zap-ext__basic-traditional-json-plus.json").read_bytes())
    from_xml = parse(corpus_file("zap/zap-ext__basic-traditional-xml-plus.xml").read_bytes())
    assert from_json.findings == from_xml.findings
    [finding] = from_json.findings
    assert (finding.title, finding.severity.value, finding.url) == (
        "XSS",
        "high",
        "http://example.com/example_3",
    )
    assert finding.evidence["param"] == "Test Param"
    assert finding.evidence["cwe_id"] == 123
    assert [i["other_info"] for i in finding.evidence["instances"]] == [
        "Test 'Other\\\nSecond line",
        "Test Another 'Other\\",
    ]


def test_the_unmerged_2_4_layout_folds_repeats_into_one_finding_per_location() -> None:
    output = parse(corpus_file("zap/dradis__ZAP_2.4.3_report-unmerged.xml").read_bytes())
    alerts = [alert for site in report(output).sites for alert in site.alerts]
    assert len(alerts) == 295
    assert all(len(alert.instances) == 1 for alert in alerts)
    assert len(output.findings) < len(alerts)
    counted = sum(
        f.evidence.get("instance_count", len(f.evidence["instances"])) for f in output.findings
    )
    assert counted == 295


def test_a_false_positive_stays_in_the_data_but_is_no_finding() -> None:
    output = parse(corpus_file("zap/scb__bodgeit.xml").read_bytes())
    [false_positive] = [
        alert for site in report(output).sites for alert in site.alerts if alert.confidence == 0
    ]
    assert false_positive.name == "HTTP Only Site"
    assert "HTTP Only Site" not in {f.title for f in output.findings}


def test_a_huge_evidence_is_cut_in_the_finding_not_in_the_data() -> None:
    output = parse(
        corpus_file("zap/scb-old-demo-juice-shop-full-scan__zap-results.json").read_bytes()
    )
    longest = max(
        len(i.evidence) for site in report(output).sites for a in site.alerts for i in a.instances
    )
    assert longest > 1_000_000
    cut = [
        i["evidence"]
        for f in output.findings
        for i in f.evidence["instances"]
        if "more characters in the raw report" in i.get("evidence", "")
    ]
    assert cut
    assert max(len(text) for text in cut) < 2100
