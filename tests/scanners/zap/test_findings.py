from __future__ import annotations

import pytest

from contracts.findings import Finding, Severity
from contracts.zap import ZapAlert, ZapInstance, ZapReport, ZapSite
from scanners.zap.findings import MAX_INSTANCES, MAX_TEXT, cut, html_text, location, report_findings


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://example.com", "http://example.com/"),
        ("HTTP://Example.COM:80/A/b", "http://example.com/A/b"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/", "https://example.com:8443/"),
        ("http://example.com/s?q=shoes&_=1614423", "http://example.com/s?_&q"),
        ("http://example.com/s?_=99&q=boots#top", "http://example.com/s?_&q"),
        ("http://example.com/s?b=1&a=2&a=3", "http://example.com/s?a&b"),
        ("http://example.com/s?flag", "http://example.com/s?flag"),
        ("http://user:pw@example.com/", "http://example.com/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("//bodgeit.svc", "://bodgeit.svc/"),
        ("http://example.com:99999/", "http://example.com:99999/"),
        ("  http://example.com/  ", "http://example.com/"),
    ],
)
def test_locations_drop_what_changes_between_scans(uri: str, expected: str) -> None:
    assert location(uri) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<p>One.</p><p>Two &amp; three.</p>", "One.\nTwo & three."),
        ("plain text", "plain text"),
        ("a<br/>b<BR>c", "a\nb\nc"),
        ("<ul><li>x</li><li>y</li></ul>", "x\ny"),
        ("if a < b and c > d", "if a < b and c > d"),
        ("use <code>nosniff</code>  here", "use nosniff here"),
        ("<p></p>", ""),
    ],
)
def test_html_becomes_a_line_per_paragraph(text: str, expected: str) -> None:
    assert html_text(text) == expected


def test_long_texts_are_cut_with_a_note() -> None:
    assert cut("x" * MAX_TEXT) == "x" * MAX_TEXT
    assert cut("x" * (MAX_TEXT + 5)) == "x" * MAX_TEXT + "… [5 more characters in the raw report]"


def alert(**fields: object) -> ZapAlert:
    defaults: dict[str, object] = {
        "plugin_id": "10020",
        "alert_ref": "10020-1",
        "alert": "Missing Anti-clickjacking Header",
        "risk_code": 2,
        "confidence": 2,
        "description": "<p>No X-Frame-Options.</p>",
        "solution": "<p>Set it.</p>",
        "reference": "<p>https://example.org/xfo</p><p>see also https://example.org/csp</p>",
        "cwe_id": 1021,
        "wasc_id": 15,
        "instances": (
            ZapInstance(uri="http://a.test/x?id=1", method="GET", param="x-frame-options"),
        ),
    }
    return ZapAlert(**(defaults | fields))  # type: ignore[arg-type]


def findings_of(*alerts: ZapAlert, site: str = "http://a.test") -> list[Finding]:
    return report_findings(
        ZapReport(sites=(ZapSite(name=site, host="a.test", port=80, alerts=alerts),))
    )


def test_an_alert_instance_is_a_finding_with_its_place_and_texts() -> None:
    [finding] = findings_of(alert())
    assert finding.tool == "zap"
    assert finding.severity is Severity.MEDIUM
    assert finding.title == "Missing Anti-clickjacking Header"
    assert finding.description == "No X-Frame-Options."
    assert (finding.host, finding.port, finding.protocol) == ("a.test", 80, "tcp")
    assert finding.url == "http://a.test/x?id=1"
    assert finding.references == (
        "https://example.org/xfo",
        "https://example.org/csp",
        "https://cwe.mitre.org/data/definitions/1021.html",
    )
    assert finding.evidence == {
        "plugin_id": "10020",
        "alert_ref": "10020-1",
        "confidence": "medium",
        "cwe_id": 1021,
        "wasc_id": 15,
        "method": "GET",
        "param": "x-frame-options",
        "solution": "Set it.",
        "instances": [{"uri": "http://a.test/x?id=1"}],
    }


@pytest.mark.parametrize(
    ("risk", "severity"), [(0, "info"), (1, "low"), (2, "medium"), (3, "high")]
)
def test_zap_risk_is_the_severity(risk: int, severity: str) -> None:
    [finding] = findings_of(alert(risk_code=risk))
    assert finding.severity.value == severity


def test_the_fingerprint_survives_a_rescan_that_changes_only_volatile_things() -> None:
    [first] = findings_of(alert())
    [again] = findings_of(
        alert(
            alert="Missing Anti-clickjacking Header (reworded)",
            confidence=3,
            description="<p>new text</p>",
            instances=(
                ZapInstance(
                    uri="HTTP://A.test:80/x?id=2#frag",
                    method="get",
                    param="x-frame-options",
                    evidence="X-Frame-Options: none at 12:01:02",
                    attack="' or 1=1",
                ),
            ),
        ),
        site="http://a.test:80",
    )
    assert again.fingerprint == first.fingerprint


@pytest.mark.parametrize(
    "change",
    [
        {"alert_ref": "10020-2"},
        {
            "instances": (
                ZapInstance(uri="http://a.test/y?id=1", method="GET", param="x-frame-options"),
            )
        },
        {
            "instances": (
                ZapInstance(uri="http://a.test/x?id=1", method="POST", param="x-frame-options"),
            )
        },
        {"instances": (ZapInstance(uri="http://a.test/x?id=1", method="GET", param="csp"),)},
        {
            "instances": (
                ZapInstance(uri="http://a.test/x?page=1", method="GET", param="x-frame-options"),
            )
        },
        {
            "instances": (
                ZapInstance(uri="https://a.test/x?id=1", method="GET", param="x-frame-options"),
            )
        },
    ],
)
def test_another_rule_or_place_is_another_finding(change: dict[str, object]) -> None:
    [first] = findings_of(alert())
    [other] = findings_of(alert(**change))
    assert other.fingerprint != first.fingerprint


def test_without_alert_ref_the_plugin_id_names_the_rule() -> None:
    [old] = findings_of(alert(alert_ref="", plugin_id="10020"))
    [new] = findings_of(alert(alert_ref="10020", plugin_id="10020"))
    assert old.fingerprint == new.fingerprint


def test_instances_at_one_place_fold_into_one_finding() -> None:
    instances = tuple(
        ZapInstance(uri=f"http://a.test/x?id={n}", method="GET", param="p", evidence=f"e{n}")
        for n in range(MAX_INSTANCES + 5)
    )
    [finding] = findings_of(alert(instances=instances))
    assert finding.url == "http://a.test/x?id=0"
    assert len(finding.evidence["instances"]) == MAX_INSTANCES
    assert finding.evidence["instance_count"] == MAX_INSTANCES + 5
    assert finding.evidence["instances"][1] == {"uri": "http://a.test/x?id=1", "evidence": "e1"}


def test_the_same_place_in_two_alert_items_is_one_finding() -> None:
    [finding] = findings_of(alert(), alert())
    assert len(finding.evidence["instances"]) == 2


def test_an_alert_without_instances_is_located_at_its_site() -> None:
    [finding] = findings_of(alert(instances=()), site="https://a.test")
    assert finding.url == "https://a.test"
    assert (finding.host, finding.port) == ("a.test", 443)
    assert "method" not in finding.evidence


def test_false_positives_are_no_findings_and_unknown_confidence_is_kept() -> None:
    assert findings_of(alert(confidence=0)) == []
    [finding] = findings_of(alert(confidence=None, cwe_id=None, reference=""))
    assert "confidence" not in finding.evidence
    assert finding.references == ()


def test_an_unparseable_uri_keeps_the_sites_host_and_port() -> None:
    [finding] = findings_of(alert(instances=(ZapInstance(uri="http://[bad/x", method="GET"),)))
    assert (finding.host, finding.port) == ("a.test", 80)
    assert finding.url == "http://[bad/x"


def test_a_title_falls_back_to_the_name_then_the_rule() -> None:
    [named] = findings_of(alert(alert="", name="Named"))
    [bare] = findings_of(alert(alert="", name=""))
    assert (named.title, bare.title) == ("Named", "ZAP rule 10020")
