"""nmap XML (`-oX`) to findings and `NmapRun` data. Pure and total.

- Streaming: `iterparse` and each top-level element (a `<host>`, `<runstats>`...) is dropped
  from the tree once read, so memory tracks the result, not the file.
- An interrupted scan (nmap killed or timed out, file cut anywhere) is a result, not an
  error: the hosts nmap completed, with `partial=True`. Only expat's end-of-input errors count
  as interruption, and only after an `<nmaprun>` root was seen.
- Anything else is a `ParseError`: not XML, another root element, XML broken mid-way, or a
  DTD with entity declarations (defusedxml refuses those: entity expansion bombs). Empty
  input is a `ParseError` as well: nmap writes the root element at start-up, so an empty file
  means nmap never ran, not that it found nothing.
- One tolerance: comments before the XML declaration are skipped. nmap never writes them, but
  repositories prepend licence headers to committed scan files, and a comment holds no data.
"""

from __future__ import annotations

import io
import re
import sys
from typing import IO
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLParseError
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from contracts.findings import Finding
from contracts.nmap import (
    Address,
    ExtraPorts,
    Host,
    Hostname,
    NmapRun,
    OsMatch,
    Port,
    ScanInfo,
    Script,
    ScriptElem,
    ScriptTable,
    Service,
)
from scanners.errors import ParseError
from scanners.nmap.findings import host_findings
from scanners.output import ToolOutput

_TOOL = "nmap"
_TRUNCATION_CODES = frozenset(
    expat_errors.codes[message]
    for message in (
        expat_errors.XML_ERROR_NO_ELEMENTS,
        expat_errors.XML_ERROR_UNCLOSED_TOKEN,
        expat_errors.XML_ERROR_PARTIAL_CHAR,
        expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    )
)
# NSE tables nest as deep as a script's Lua data; none comes near this, and the bound keeps
# hostile input from turning into a RecursionError.
_MAX_TABLE_DEPTH = 64
# Values that repeat across ports and hosts ("tcp", "open", "OpenSSH", NSE keys such as "cvss"
# and "id"): one shared string each instead of one per occurrence. On a large scan that is
# most of the strings the result holds.
_intern = sys.intern
_HEAD_SIZE = 8192
_LEADING_COMMENTS = re.compile(rb"(?:\s*<!--.*?-->)+\s*(?=<\?xml)", re.S)


def parse(data: bytes) -> ToolOutput:
    return parse_stream(io.BytesIO(data))


def parse_stream(fp: IO[bytes]) -> ToolOutput:
    """Parse nmap XML from a binary file object, holding the XML of one host at a time."""
    root: Element | None = None
    run: dict[str, str] = {}
    depth = 0
    hosts: list[Host] = []
    # Keyed by fingerprint: a host listed twice (nmap scans duplicates it is given) must not
    # yield two findings with one identity.
    findings: dict[str, Finding] = {}
    scan_info: list[ScanInfo] = []
    prescripts: list[Script] = []
    postscripts: list[Script] = []
    finished: dict[str, str] | None = None
    counts: dict[str, str] = {}
    truncated = False
    try:
        for event, elem in iterparse(_skip_leading_comments(fp), events=("start", "end")):
            if event == "start":
                if root is None:
                    if elem.tag != "nmaprun":
                        raise ParseError(_TOOL, f"root element is <{elem.tag}>, not <nmaprun>")
                    root, run = elem, dict(elem.attrib)
                depth += 1
                continue
            depth -= 1
            if depth != 1 or root is None:
                continue
            match elem.tag:
                case "host":
                    host = _host(elem)
                    hosts.append(host)
                    for finding in host_findings(host):
                        findings.setdefault(finding.fingerprint, finding)
                case "scaninfo":
                    scan_info.append(_scan_info(elem))
                case "prescript":
                    prescripts += _scripts(elem)
                case "postscript":
                    postscripts += _scripts(elem)
                case "runstats":
                    finished = dict(_child(elem, "finished").attrib)
                    counts = dict(_child(elem, "hosts").attrib)
            # Attributes were copied at the root's start event; the children are done with.
            root.clear()
    except XMLParseError as exc:
        if root is None or exc.code not in _TRUNCATION_CODES:
            raise ParseError(_TOOL, _xml_error(exc, root is None)) from exc
        truncated = True
    except DefusedXmlException as exc:
        raise ParseError(_TOOL, f"refused a forbidden XML construct: {exc!r}") from exc
    if root is None:
        raise ParseError(_TOOL, "no <nmaprun> element")
    # nmap writes <runstats> last, when it stops on its own; without it, or with an error
    # exit, the hosts are what it got through, not what was asked for.
    partial = truncated or finished is None or finished.get("exit") == "error"
    done = finished or {}
    data = NmapRun(
        args=run.get("args", ""),
        version=run.get("version", ""),
        xml_output_version=run.get("xmloutputversion", ""),
        start=_optional_int(run.get("start")),
        end=_optional_int(done.get("time")),
        elapsed_seconds=_optional_float(done.get("elapsed")),
        exit=done.get("exit", ""),
        error_message=done.get("errormsg", ""),
        scan_info=tuple(scan_info),
        hosts=tuple(hosts),
        hosts_up=_optional_int(counts.get("up")),
        hosts_down=_optional_int(counts.get("down")),
        hosts_total=_optional_int(counts.get("total")),
        prescripts=tuple(prescripts),
        postscripts=tuple(postscripts),
        partial=partial,
    )
    return ToolOutput(findings=tuple(findings.values()), data=data, partial=partial)


class _Rest:
    """`head` and then the rest of `fp`: the stream after a peeked-at, trimmed start."""

    def __init__(self, head: bytes, fp: IO[bytes]) -> None:
        self._head = head
        self._fp = fp

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._fp.read(size)


def _skip_leading_comments(fp: IO[bytes]) -> _Rest:
    head = fp.read(_HEAD_SIZE)
    match = _LEADING_COMMENTS.match(head)
    return _Rest(head[match.end() :] if match else head, fp)


def _host(elem: Element) -> Host:
    status = _child(elem, "status")
    return Host(
        status=_intern(status.get("state", "")),
        status_reason=_intern(status.get("reason", "")),
        addresses=tuple(
            Address(
                addr=address.get("addr", ""),
                addrtype=_intern(address.get("addrtype", "")),
                vendor=address.get("vendor", ""),
            )
            for address in elem.iterfind("address")
        ),
        hostnames=tuple(
            Hostname(name=name.get("name", ""), type=_intern(name.get("type", "")))
            for name in elem.iterfind("hostnames/hostname")
        ),
        ports=tuple(_port(port) for port in elem.iterfind("ports/port")),
        extraports=tuple(
            ExtraPorts(state=_intern(extra.get("state", "")), count=_int(extra, "count"))
            for extra in elem.iterfind("ports/extraports")
        ),
        os_matches=tuple(
            OsMatch(
                name=match.get("name", ""),
                accuracy=_optional_int(match.get("accuracy")),
                cpe=tuple(cpe.text or "" for cpe in match.iter("cpe")),
            )
            for match in elem.iterfind("os/osmatch")
        ),
        scripts=_scripts(elem.find("hostscript")),
        start=_optional_int(elem.get("starttime")),
        end=_optional_int(elem.get("endtime")),
    )


def _port(elem: Element) -> Port:
    state = _child(elem, "state")
    service = elem.find("service")
    return Port(
        protocol=_intern(elem.get("protocol", "")),
        portid=_int(elem, "portid"),
        state=_intern(state.get("state", "")),
        reason=_intern(state.get("reason", "")),
        service=None if service is None else _service(service),
        scripts=_scripts(elem),
    )


def _service(elem: Element) -> Service:
    return Service(
        name=_intern(elem.get("name", "")),
        product=_intern(elem.get("product", "")),
        version=_intern(elem.get("version", "")),
        extrainfo=_intern(elem.get("extrainfo", "")),
        tunnel=_intern(elem.get("tunnel", "")),
        method=_intern(elem.get("method", "")),
        conf=_optional_int(elem.get("conf")),
        cpe=tuple(_intern(cpe.text or "") for cpe in elem.iterfind("cpe")),
    )


def _scripts(parent: Element | None) -> tuple[Script, ...]:
    if parent is None:
        return ()
    scripts = []
    for script in parent:
        if script.tag == "script":
            elems, tables = _structure(script, 1)
            scripts.append(
                Script(
                    id=_intern(script.get("id", "")),
                    output=script.get("output", ""),
                    elems=elems,
                    tables=tables,
                )
            )
    return tuple(scripts)


def _structure(elem: Element, depth: int) -> tuple[tuple[ScriptElem, ...], tuple[ScriptTable, ...]]:
    """The `<elem>`s and `<table>`s directly inside an NSE script or table."""
    if depth > _MAX_TABLE_DEPTH:
        raise ParseError(_TOOL, f"NSE tables nested deeper than {_MAX_TABLE_DEPTH}")
    elems: list[ScriptElem] = []
    tables: list[ScriptTable] = []
    # One pass over the children rather than ElementPath lookups: vulners and ssl-enum-ciphers
    # output is thousands of these per host, and this is the parser's hottest loop.
    for child in elem:
        if child.tag == "elem":
            elems.append(
                ScriptElem(key=_optional_intern(child.get("key")), value=_intern(child.text or ""))
            )
        elif child.tag == "table":
            table_elems, table_tables = _structure(child, depth + 1)
            tables.append(
                ScriptTable(
                    key=_optional_intern(child.get("key")), elems=table_elems, tables=table_tables
                )
            )
    return tuple(elems), tuple(tables)


def _optional_intern(text: str | None) -> str | None:
    return None if text is None else _intern(text)


def _scan_info(elem: Element) -> ScanInfo:
    return ScanInfo(
        type=elem.get("type", ""),
        protocol=elem.get("protocol", ""),
        services=elem.get("services", ""),
    )


def _child(elem: Element, tag: str) -> Element:
    # A missing optional child reads as an empty element: every attribute then takes its
    # default, which is what nmap versions that never wrote the element meant.
    found = elem.find(tag)
    return Element(tag) if found is None else found


def _int(elem: Element, attribute: str) -> int:
    """A required integer attribute; a port without a usable number has no identity."""
    text = elem.get(attribute)
    try:
        return int(text or "")
    except ValueError as exc:
        raise ParseError(_TOOL, f"<{elem.tag}> {attribute}={text!r} is not an integer") from exc


def _optional_int(text: str | None) -> int | None:
    """Metadata (times, confidence) that old nmap versions sometimes omit or spell oddly."""
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _optional_float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _xml_error(exc: XMLParseError, before_root: bool) -> str:
    if before_root and exc.code == expat_errors.codes[expat_errors.XML_ERROR_NO_ELEMENTS]:
        return "no XML element at all: empty output, or nmap never started writing"
    return f"not well-formed XML: {exc}"
