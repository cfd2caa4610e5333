from __future__ import annotations

import io
import json
from typing import Any

import pytest

from contracts.zap import ZapAlert, ZapInstance, ZapReport, ZapSite, ZapTag
from scanners.errors import ParseError
from scanners.zap.parse import parse, parse_stream, read_report

ALERT: dict[str, Any] = {
    "pluginid": "10202",
    "alertRef": "10202",
    "alert": "Absence of Anti-CSRF Tokens",
    "name": "Absence of Anti-CSRF Tokens",
    "riskcode": "1",
    "confidence": "2",
    "riskdesc": "Low (Medium)",
    "desc": "<p>No Anti-CSRF tokens were found.</p>",
    "instances": [
        {"uri": "http://a.test/form", "method": "POST", "param": "", "evidence": "<form>"}
    ],
    "count": "1",
    "solution": "<p>Use a vetted library.</p>",
    "otherinfo": "",
    "reference": "<p>https://example.org/csrf</p>",
    "cweid": "352",
    "wascid": "9",
    "sourceid": "3",
}
EXPECTED_ALERT = ZapAlert(
    plugin_id="10202",
    alert_ref="10202",
    alert="Absence of Anti-CSRF Tokens",
    name="Absence of Anti-CSRF Tokens",
    risk_code=1,
    confidence=2,
    description="<p>No Anti-CSRF tokens were found.</p>",
    solution="<p>Use a vetted library.</p>",
    reference="<p>https://example.org/csrf</p>",
    cwe_id=352,
    wasc_id=9,
    source_id="3",
    count=1,
    instances=(ZapInstance(uri="http://a.test/form", method="POST", evidence="<form>"),),
)


def report(*alerts: dict[str, Any], **top: Any) -> bytes:
    site = {"@name": "http://a.test", "@host": "a.test", "@port": "80", "@ssl": "false"}
    document = {
        "@programName": "ZAP",
        "@version": "2.16.1",
        "@generated": "Mon, 1 Jan 2024 10:00:00",
        "site": [{**site, "alerts": list(alerts)}],
        **top,
    }
    return json.dumps(document).encode()


def xml(
    alertitems: str, root: str = "OWASPZAPReport", head: str = '<?xml version="1.0"?>'
) -> bytes:
    return (
        f'{head}<{root} programName="ZAP" version="2.16.1" generated="Mon, 1 Jan 2024">'
        f'<site name="https://a.test" host="a.test" port="443" ssl="true"><alerts>'
        f"{alertitems}</alerts></site></{root}>"
    ).encode()


ALERTITEM = """<alertitem><pluginid>10202</pluginid><alertRef>10202</alertRef>
<alert>Absence of Anti-CSRF Tokens</alert><name>Absence of Anti-CSRF Tokens</name>
<riskcode>1</riskcode><confidence>2</confidence><riskdesc>Low (Medium)</riskdesc>
<desc>&lt;p&gt;No Anti-CSRF tokens were found.&lt;/p&gt;</desc>
<instances><instance><uri>http://a.test/form</uri><method>POST</method><param></param>
<evidence>&lt;form&gt;</evidence></instance></instances><count>1</count>
<solution>&lt;p&gt;Use a vetted library.&lt;/p&gt;</solution><otherinfo></otherinfo>
<reference>&lt;p&gt;https://example.org/csrf&lt;/p&gt;</reference>
<cweid>352</cweid><wascid>9</wascid><sourceid>3</sourceid></alertitem>"""


def test_a_json_report_reads_into_data_and_findings() -> None:
    output = parse(report(ALERT))
    assert output.data == ZapReport(
        format="json",
        program_name="ZAP",
        version="2.16.1",
        generated="Mon, 1 Jan 2024 10:00:00",
        sites=(
            ZapSite(
                name="http://a.test", host="a.test", port=80, ssl=False, alerts=(EXPECTED_ALERT,)
            ),
        ),
    )
    [finding] = output.findings
    assert (finding.title, finding.severity.value, finding.url) == (
        "Absence of Anti-CSRF Tokens",
        "low",
        "http://a.test/form",
    )
    assert not output.partial


def test_the_same_report_as_xml_reads_the_same_alert() -> None:
    data = read_report(xml(ALERTITEM))
    assert data.format == "xml"
    assert (data.program_name, data.version) == ("ZAP", "2.16.1")
    [site] = data.sites
    assert (site.name, site.port, site.ssl) == ("https://a.test", 443, True)
    assert site.alerts == (EXPECTED_ALERT,)


def test_zap_2_7_single_site_object_nulls_and_numbers_are_read() -> None:
    alert = {
        **ALERT,
        "riskcode": 1,
        "cweid": -1,
        "wascid": None,
        "otherinfo": None,
        "instances": {"uri": "http://a.test/", "method": "GET", "nodeName": None},
    }
    document = {
        "@version": "2.7.0",
        "@generated": "x",
        "site": {"@name": "http://a.test", "@port": 80, "alerts": alert},
    }
    [site] = read_report(json.dumps(document).encode()).sites
    assert site.port == 80
    [read] = site.alerts
    assert (read.risk_code, read.cwe_id, read.wasc_id, read.other_info) == (1, None, None, "")
    assert read.instances == (ZapInstance(uri="http://a.test/", method="GET"),)


def test_new_zap_fields_are_kept_or_ignored() -> None:
    alert = {
        **ALERT,
        "systemic": True,
        "tags": [{"tag": "OWASP_2021_A01", "link": "https://owasp.org/Top10/A01"}],
        "instances": [{**ALERT["instances"][0], "id": "7", "request-header": "GET / HTTP/1.1"}],
    }
    data = read_report(report(alert, created="2025-10-29T10:53:54Z", sequences=[]))
    assert data.created == "2025-10-29T10:53:54Z"
    [read] = data.sites[0].alerts
    assert read.systemic is True
    assert read.tags == (ZapTag(tag="OWASP_2021_A01", link="https://owasp.org/Top10/A01"),)
    assert read.instances == EXPECTED_ALERT.instances


def test_xml_tags_systemic_and_the_unmerged_layout() -> None:
    unmerged = """<alertitem><pluginid>10016</pluginid><alert>XSS Protection</alert>
    <riskcode>1</riskcode><confidence>2</confidence><desc>d</desc>
    <uri>http://a.test/x</uri><param>p</param><attack>a</attack><evidence>e</evidence>
    <otherinfo>why</otherinfo><systemic>false</systemic>
    <tags><tag><tag>CWE-693</tag><link>https://cwe.mitre.org/693</link></tag></tags>
    <solution>s</solution><reference>r</reference><cweid>693</cweid></alertitem>"""
    [alert] = read_report(xml(unmerged)).sites[0].alerts
    assert alert.instances == (
        ZapInstance(uri="http://a.test/x", param="p", attack="a", evidence="e"),
    )
    assert (alert.other_info, alert.systemic) == ("why", False)
    assert alert.tags == (ZapTag(tag="CWE-693", link="https://cwe.mitre.org/693"),)


def test_comments_before_the_xml_declaration_are_skipped() -> None:
    data = xml(
        ALERTITEM, head='<!--\nSPDX-License-Identifier: Apache-2.0\n-->\n\n<?xml version="1.0"?>'
    )
    assert read_report(data).sites[0].alerts == (EXPECTED_ALERT,)


def test_a_report_with_nothing_found_is_empty_not_an_error() -> None:
    output = parse(b'{"@version": "2.16.1", "site": []}')
    assert output.findings == ()
    assert output.data == ZapReport(format="json", version="2.16.1")
    assert parse(xml("")).findings == ()


def test_parse_stream_reads_the_same() -> None:
    data = report(ALERT)
    assert parse_stream(io.BytesIO(data)) == parse(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty output: ZAP wrote no report"),
        (b"  \n", "empty output: ZAP wrote no report"),
        (b"Job spider started", "neither a JSON nor an XML report"),
        (b'{"@version": "2.16.1", "site": [', "not a ZAP JSON report: Input data was truncated"),
        (b'{"@version": "2.16.1"}', "not a ZAP JSON report: Object missing required field `site`"),
        (
            b'{"site": "x"}',
            "not a ZAP JSON report: Expected `object | array | null`, got `str` - at `$.site`",
        ),
        (b"[]", "neither a JSON nor an XML report"),
        (xml(ALERTITEM)[:-30], "not well-formed XML"),
        (xml("", root="report"), "root element <report> is not <OWASPZAPReport>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><OWASPZAPReport>&a;'
            b"</OWASPZAPReport>",
            "refused XML",
        ),
    ],
)
def test_unreadable_input_is_a_parse_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(data)
    assert raised.value.tool == "zap"
    assert raised.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pluginid": ""}, "site 0 alert 0 (Absence of Anti-CSRF Tokens) has no pluginid"),
        ({"pluginid": None, "alert": ""}, "site 0 alert 0 (Absence of Anti-CSRF Tokens) has no"),
        (
            {"riskcode": "4"},
            "site 0 alert 0 (Absence of Anti-CSRF Tokens): riskcode '4' is not 0-3",
        ),
        ({"riskcode": None}, "riskcode '' is not 0-3"),
        ({"riskcode": "High"}, "riskcode 'High' is not 0-3"),
        ({"confidence": "9"}, "confidence '9' is not 0-4"),
    ],
)
def test_an_alert_without_identity_or_severity_is_a_parse_error(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ParseError) as raised:
        parse(report({**ALERT, **change}))
    assert reason in raised.value.reason


def test_a_second_alert_is_named_by_its_place() -> None:
    with pytest.raises(ParseError, match=r"site 0 alert 1 \(B\): riskcode"):
        parse(report(ALERT, {**ALERT, "alert": "B", "riskcode": "7"}))
    broken = ALERTITEM.replace("<riskcode>1</riskcode>", "<riskcode>-1</riskcode>")
    with pytest.raises(ParseError, match=r"site 0 alert 1 \(Absence.*\): riskcode '-1'"):
        parse(xml(ALERTITEM + broken))


def test_a_double_encoded_json_report_is_read_as_the_report_it_holds() -> None:
    # A script that ran ZAP's JSON through json.dumps again wrote one JSON string.
    plain = report(ALERT)
    double = json.dumps(plain.decode()).encode()
    assert double.startswith(b'"{')
    assert parse(double) == parse(plain)
    assert read_report(b"\xef\xbb\xbf " + double + b"\n") == read_report(plain)


def test_a_double_encoded_xml_report_is_read_too() -> None:
    plain = xml(ALERTITEM)
    assert parse(json.dumps(plain.decode()).encode()) == parse(plain)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'"{\\"site\\": [', "a JSON string, but not one that holds a report"),
        (json.dumps("# ZAP Scanning Report").encode(), "a JSON string that holds no report"),
        (json.dumps(json.dumps("{}")).encode(), "a JSON string that holds no report"),
        (
            b"# ZAP Scanning Report\n\n## Summary of Alerts\n",
            "neither a JSON nor an XML report: found Markdown text starting"
            " '# ZAP Scanning Report'",
        ),
    ],
)
def test_strings_and_markdown_that_hold_no_report_are_refused_by_name(
    data: bytes, reason: str
) -> None:
    with pytest.raises(ParseError) as raised:
        parse(data)
    assert reason in raised.value.reason
