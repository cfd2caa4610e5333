"""ZAP reports to findings and `ZapReport` data. Pure and total.

Read: the traditional JSON report (ZAP 2.7 to 2.16, indented or minified, with or without the
"-plus" request/response fields) and the traditional XML report (`<OWASPZAPReport>`, ZAP 2.4
to 2.16), both the merged layout (`<instances>` under each alert) and ZAP 2.4's unmerged one
(one `<alertitem>` per occurrence, its `<uri>` on the item). The format is told by the first
character: `{` JSON, `<` XML.

Tolerated, because real reports have them: ZAP 2.7's single `site` written as an object
rather than a list (ZAP issue 5162), `null` texts, numbers written as JSON numbers rather
than strings, comments before the XML declaration (licence headers in repositories),
metadata (CWE, WASC, counts) that is missing or not a number, read as absent, and a report
written double-encoded (one JSON string holding the JSON or XML report), read once unwrapped.

A `ParseError` names what is wrong: empty output (ZAP writes its report only once the plan
is done, so an empty file means it wrote none), neither JSON nor XML, malformed or cut-off
JSON or XML, DTD entities (refused by defusedxml: expansion bombs), another root element
(such as ZAP 1.x's `<report>`, a format from before 2.0 that this parser does not read), a
JSON document without `site`, and an alert without a rule id or with a risk outside 0-3 or
a confidence outside 0-4: without those an alert has no identity or severity.

ZAP writes the report from memory in one piece at the end of the plan (the largest real one
seen is 3.7 MB), so `parse_stream` reads it whole: no partial report is ever valid, and
`partial` is always false.
"""

from __future__ import annotations

import re
from typing import IO, TypeVar
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLParseError

import msgspec
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from contracts.zap import ZapAlert, ZapInstance, ZapReport, ZapSite, ZapTag
from scanners.errors import ParseError
from scanners.output import ToolOutput, found, utf8
from scanners.zap.findings import report_findings

_TOOL = "zap"
_XML_ROOT = "OWASPZAPReport"
_LEADING_COMMENTS = re.compile(rb"(?:\s*<!--.*?-->)+\s*(?=<\?xml)", re.S)
_BOM = b"\xef\xbb\xbf"

_T = TypeVar("_T")
_Text = str | None
_Number = str | int | None


class _JsonInstance(msgspec.Struct, kw_only=True):
    uri: _Text = None
    method: _Text = None
    param: _Text = None
    attack: _Text = None
    evidence: _Text = None
    otherinfo: _Text = None
    nodeName: _Text = None  # ZAP's key


class _JsonTag(msgspec.Struct, kw_only=True):
    tag: _Text = None
    link: _Text = None


class _JsonAlert(msgspec.Struct, kw_only=True):
    pluginid: _Number = None
    alertRef: _Text = None  # ZAP's key
    alert: _Text = None
    name: _Text = None
    riskcode: _Number = None
    confidence: _Number = None
    desc: _Text = None
    solution: _Text = None
    otherinfo: _Text = None
    reference: _Text = None
    cweid: _Number = None
    wascid: _Number = None
    sourceid: _Number = None
    count: _Number = None
    systemic: bool | None = None
    tags: list[_JsonTag] | None = None
    instances: list[_JsonInstance] | _JsonInstance | None = None


class _JsonSite(msgspec.Struct, kw_only=True):
    name: _Text = msgspec.field(default=None, name="@name")
    host: _Text = msgspec.field(default=None, name="@host")
    port: _Number = msgspec.field(default=None, name="@port")
    ssl: _Text = msgspec.field(default=None, name="@ssl")
    alerts: list[_JsonAlert] | _JsonAlert | None = None


class _JsonReport(msgspec.Struct, kw_only=True):
    site: list[_JsonSite] | _JsonSite | None
    program_name: _Text = msgspec.field(default=None, name="@programName")
    version: _Text = msgspec.field(default=None, name="@version")
    generated: _Text = msgspec.field(default=None, name="@generated")
    created: _Text = None


_json_report = msgspec.json.Decoder(_JsonReport)
_json_string = msgspec.json.Decoder(str)


def parse(data: bytes) -> ToolOutput:
    report = read_report(data)
    return ToolOutput(findings=tuple(report_findings(report)), data=report)


def parse_stream(fp: IO[bytes]) -> ToolOutput:
    return parse(fp.read())


def read_report(data: bytes) -> ZapReport:
    """The report's data in either format, or `ParseError`."""
    text = data.removeprefix(_BOM).lstrip()
    if not text:
        raise ParseError(_TOOL, "empty output: ZAP wrote no report")
    if text.startswith(b'"'):
        text = _unwrap(text)
    if text.startswith(b"{"):
        return _from_json(text)
    if text.startswith(b"<"):
        return _from_xml(text)
    raise ParseError(_TOOL, f"neither a JSON nor an XML report: {found(text)}")


def _unwrap(data: bytes) -> bytes:
    """The report inside a JSON string: a script that passed ZAP's JSON through
    `json.dumps` again writes the whole report as one string (double-encoded)."""
    try:
        inner = _json_string.decode(utf8(data))
    except msgspec.DecodeError as exc:
        raise ParseError(_TOOL, f"a JSON string, but not one that holds a report: {exc}") from exc
    text = inner.encode().removeprefix(_BOM).lstrip()
    if not text.startswith((b"{", b"<")):
        raise ParseError(_TOOL, f"a JSON string that holds no report: {found(text)}")
    return text


def _from_json(data: bytes) -> ZapReport:
    try:
        raw = _json_report.decode(utf8(data))
    except msgspec.DecodeError as exc:
        raise ParseError(_TOOL, f"not a ZAP JSON report: {exc}") from exc
    sites = tuple(
        ZapSite(
            name=_str(site.name),
            host=_str(site.host),
            port=_int(site.port),
            ssl=_bool(site.ssl),
            alerts=tuple(
                _json_alert(alert, where=f"site {s} alert {a}")
                for a, alert in enumerate(_items(site.alerts))
            ),
        )
        for s, site in enumerate(_items(raw.site))
    )
    return ZapReport(
        format="json",
        program_name=_str(raw.program_name),
        version=_str(raw.version),
        generated=_str(raw.generated),
        created=_str(raw.created),
        sites=sites,
    )


def _json_alert(raw: _JsonAlert, where: str) -> ZapAlert:
    return _alert(
        where,
        {
            "pluginid": _str(raw.pluginid),
            "alertRef": _str(raw.alertRef),
            "alert": _str(raw.alert),
            "name": _str(raw.name),
            "riskcode": _str(raw.riskcode),
            "confidence": _str(raw.confidence),
            "desc": _str(raw.desc),
            "solution": _str(raw.solution),
            "otherinfo": _str(raw.otherinfo),
            "reference": _str(raw.reference),
            "cweid": _str(raw.cweid),
            "wascid": _str(raw.wascid),
            "sourceid": _str(raw.sourceid),
            "count": _str(raw.count),
        },
        systemic=raw.systemic,
        tags=tuple(ZapTag(tag=_str(t.tag), link=_str(t.link)) for t in raw.tags or ()),
        instances=tuple(
            ZapInstance(
                uri=_str(i.uri),
                method=_str(i.method),
                param=_str(i.param),
                attack=_str(i.attack),
                evidence=_str(i.evidence),
                other_info=_str(i.otherinfo),
                node_name=_str(i.nodeName),
            )
            for i in _items(raw.instances)
        ),
    )


def _from_xml(data: bytes) -> ZapReport:
    try:
        comments = _LEADING_COMMENTS.match(data)
        root = fromstring(data[comments.end() :] if comments else data)
    except XMLParseError as exc:
        raise ParseError(_TOOL, f"not well-formed XML: {exc}") from exc
    except LookupError as exc:  # the XML declaration names an encoding Python lacks
        raise ParseError(_TOOL, f"XML in an {exc}") from exc
    except DefusedXmlException as exc:
        raise ParseError(_TOOL, f"refused XML: {exc}") from exc
    if root.tag != _XML_ROOT:
        raise ParseError(_TOOL, f"root element <{root.tag}> is not <{_XML_ROOT}>")
    sites = tuple(_xml_site(site, s) for s, site in enumerate(root.findall("site")))
    return ZapReport(
        format="xml",
        program_name=root.get("programName", ""),
        version=root.get("version", ""),
        generated=root.get("generated", ""),
        created=root.get("created", ""),
        sites=sites,
    )


def _xml_site(elem: Element, index: int) -> ZapSite:
    items = elem.findall("alerts/alertitem")
    return ZapSite(
        name=elem.get("name", ""),
        host=elem.get("host", ""),
        port=_int(elem.get("port")),
        ssl=_bool(elem.get("ssl")),
        alerts=tuple(_xml_alert(item, f"site {index} alert {a}") for a, item in enumerate(items)),
    )


def _xml_alert(elem: Element, where: str) -> ZapAlert:
    texts: dict[str, str] = {}
    tags: list[ZapTag] = []
    instances: list[ZapInstance] = []
    for child in elem:
        match child.tag:
            case "instances":
                instances += (_xml_instance(i) for i in child if i.tag == "instance")
            case "tags":
                tags += (
                    ZapTag(tag=_child_text(tag, "tag"), link=_child_text(tag, "link"))
                    for tag in child
                    if tag.tag == "tag"
                )
            case str(tag):
                texts.setdefault(tag, _text(child))
    if not instances and "uri" in texts:
        # ZAP 2.4's unmerged layout: every occurrence is its own alertitem, whose otherinfo
        # is already the alert's.
        instances.append(msgspec.structs.replace(_xml_instance(elem), other_info=""))
    systemic = texts.get("systemic")
    return _alert(
        where,
        texts,
        systemic=None if systemic is None else _bool(systemic),
        tags=tuple(tags),
        instances=tuple(instances),
    )


def _xml_instance(elem: Element) -> ZapInstance:
    return ZapInstance(
        uri=_child_text(elem, "uri"),
        method=_child_text(elem, "method"),
        param=_child_text(elem, "param"),
        attack=_child_text(elem, "attack"),
        evidence=_child_text(elem, "evidence"),
        other_info=_child_text(elem, "otherinfo"),
        node_name=_child_text(elem, "nodeName"),
    )


def _alert(
    where: str,
    texts: dict[str, str],
    *,
    systemic: bool | None,
    tags: tuple[ZapTag, ...],
    instances: tuple[ZapInstance, ...],
) -> ZapAlert:
    """An alert from its texts as ZAP names them (`pluginid`, `riskcode`...), checked."""
    plugin_id = texts.get("pluginid", "").strip()
    title = texts.get("alert") or texts.get("name") or ""
    label = f"{where} ({title})" if title else where
    if not plugin_id:
        raise ParseError(_TOOL, f"{label} has no pluginid")
    risk = _int(texts.get("riskcode"))
    if risk is None or not 0 <= risk <= 3:
        raise ParseError(_TOOL, f"{label}: riskcode {texts.get('riskcode')!r} is not 0-3")
    confidence_text = texts.get("confidence", "").strip()
    confidence = _int(confidence_text)
    if confidence_text and (confidence is None or not 0 <= confidence <= 4):
        raise ParseError(_TOOL, f"{label}: confidence {confidence_text!r} is not 0-4")
    return ZapAlert(
        plugin_id=plugin_id,
        alert_ref=texts.get("alertRef", "").strip(),
        alert=texts.get("alert", ""),
        name=texts.get("name", ""),
        risk_code=risk,
        confidence=confidence,
        description=texts.get("desc", ""),
        solution=texts.get("solution", ""),
        other_info=texts.get("otherinfo", ""),
        reference=texts.get("reference", ""),
        cwe_id=_mapping_id(texts.get("cweid")),
        wasc_id=_mapping_id(texts.get("wascid")),
        source_id=texts.get("sourceid", ""),
        count=_int(texts.get("count")),
        systemic=systemic,
        tags=tags,
        instances=instances,
    )


def _items(value: list[_T] | _T | None) -> list[_T]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(elem: Element) -> str:
    # itertext: a text that came with unescaped markup in it still reads whole.
    return "".join(elem.itertext())


def _child_text(elem: Element, tag: str) -> str:
    child = elem.find(tag)
    return "" if child is None else _text(child)


def _str(value: str | int | None) -> str:
    return "" if value is None else str(value)


def _int(value: str | int | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _mapping_id(value: str | None) -> int | None:
    """A CWE or WASC id; ZAP writes -1 or 0 for a rule with none."""
    number = _int(value)
    return number if number is not None and number > 0 else None


def _bool(value: str | None) -> bool | None:
    match (value or "").strip().lower():
        case "true":
            return True
        case "false":
            return False
        case _:
            return None
