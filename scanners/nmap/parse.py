"""nmap XML (`-oX`) to findings and `NmapRun` data. Pure and total.

- Streaming: each top-level element (a `<host>`, `<runstats>`...) is dropped from the tree
  once read, so memory tracks the result, not the file; `iter_run` hands over each `Host` as
  it is read, so a consumer that does not keep them needs the memory of one host.
- An interrupted scan (nmap killed or timed out, file cut anywhere) is a result, not an
  error: the hosts nmap completed, with `partial=True`. Only expat's end-of-input errors count
  as interruption, and only after an `<nmaprun>` root was seen.
- Anything else is a `ParseError`: not XML, another root element, XML broken mid-way, or a
  DTD with entity declarations (defusedxml refuses those: entity expansion bombs). Empty
  input is a `ParseError` as well: nmap writes the root element at start-up, so an empty file
  means nmap never ran, not that it found nothing.
- Control characters XML forbids (older nmap wrote them raw inside attribute values, copied
  from service banners) are replaced by U+FFFD instead of failing the scan.
- One tolerance: comments before the XML declaration are skipped. nmap never writes them, but
  repositories prepend licence headers to committed scan files, and a comment holds no data.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from typing import IO
from xml.etree.ElementTree import Element, TreeBuilder
from xml.etree.ElementTree import ParseError as XMLParseError
from xml.parsers.expat import errors as expat_errors

import msgspec
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

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
from scanners.output import Piece, ToolOutput, found

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
_CHUNK_SIZE = 1 << 16
# What a missing optional child reads as: every attribute then takes its default, which is
# what nmap versions that never wrote the element meant.
_EMPTY: dict[str, str] = {}
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_REPLACEMENT = "\ufffd".encode()
_LEADING_COMMENTS = re.compile(rb"(?:\s*<!--.*?-->)+\s*(?=<\?xml)", re.S)


def parse(data: bytes) -> ToolOutput:
    return parse_stream(io.BytesIO(data))


def parse_stream(fp: IO[bytes]) -> ToolOutput:
    """Parse nmap XML from a binary file object, holding the XML of one host at a time."""
    hosts: list[Host] = []
    # Keyed by fingerprint: a host listed twice (nmap scans duplicates it is given) must not
    # yield two findings with one identity.
    findings: dict[str, Finding] = {}
    rest = ToolOutput(findings=(), data=NmapRun())
    for piece in iter_pieces(fp):
        if isinstance(piece, Piece):
            hosts.append(piece.item)
            for finding in piece.findings:
                findings.setdefault(finding.fingerprint, finding)
        else:
            rest = piece
    data = msgspec.structs.replace(rest.data, hosts=tuple(hosts))
    return ToolOutput(findings=tuple(findings.values()), data=data, partial=rest.partial)


def iter_pieces(fp: IO[bytes]) -> Iterator[Piece | ToolOutput]:
    """`iter_run` with each host's findings: a `Piece` per host, then the run (`hosts=()`)."""
    for item in iter_run(fp):
        if isinstance(item, Host):
            yield Piece(findings=tuple(host_findings(item)), item=item)
        else:
            yield ToolOutput(findings=(), data=item, partial=item.partial)


def iter_run(fp: IO[bytes]) -> Iterator[Host | NmapRun]:
    """Each `Host` as soon as its `</host>` is read, then the `NmapRun` around them.

    The run comes last and once, with `hosts=()`; nothing read is retained in between, so a
    consumer that handles each host as it comes (publishes its findings in batches) parses a
    scan of any size in the memory of one host. Raises `ParseError` like `parse_stream`;
    duplicate findings across hosts are the consumer's to fold, by fingerprint.
    """
    document = _Document(fp)
    scan_info: list[ScanInfo] = []
    prescripts: list[Script] = []
    postscripts: list[Script] = []
    finished: dict[str, str] | None = None
    counts: dict[str, str] = {}
    for elem in document.children():
        match elem.tag:
            case "host":
                yield _host(elem)
            case "scaninfo":
                scan_info.append(_scan_info(elem))
            case "prescript":
                prescripts += _scripts(elem)
            case "postscript":
                postscripts += _scripts(elem)
            case "runstats":
                finished = dict(_child(elem, "finished").attrib)
                counts = dict(_child(elem, "hosts").attrib)
    run = document.attrib
    # nmap writes <runstats> last, when it stops on its own; without it, or with an error
    # exit, the hosts are what it got through, not what was asked for.
    partial = document.truncated or finished is None or finished.get("exit") == "error"
    done = finished or {}
    yield NmapRun(
        args=run.get("args", ""),
        version=run.get("version", ""),
        xml_output_version=run.get("xmloutputversion", ""),
        start=_optional_int(run.get("start")),
        end=_optional_int(done.get("time")),
        elapsed_seconds=_optional_float(done.get("elapsed")),
        exit=done.get("exit", ""),
        error_message=done.get("errormsg", ""),
        scan_info=tuple(scan_info),
        hosts_up=_optional_int(counts.get("up")),
        hosts_down=_optional_int(counts.get("down")),
        hosts_total=_optional_int(counts.get("total")),
        prescripts=tuple(prescripts),
        postscripts=tuple(postscripts),
        partial=partial,
    )


class _Document:
    """An `<nmaprun>` read as its top-level children, each complete and then let go.

    defusedxml's parser is pure Python between expat and the tree builder: a Python call, a
    name fix-up and a dict per element, most of the parse time on a large scan. Here expat
    feeds the C tree builder directly for starts and text, and only an element's end passes
    through Python, to hand over each finished top-level child. The parser is still
    defusedxml's, with its handlers for entity declarations, external entities and undefined
    entities left in place; only the element and text handlers are replaced.
    """

    def __init__(self, fp: IO[bytes]) -> None:
        self._fp = fp
        # The root's attributes, once `<nmaprun>` is open; None until then.
        self.root: dict[str, str] | None = None
        self.truncated = False
        self._head = b""

    @property
    def attrib(self) -> dict[str, str]:
        if self.root is None:
            raise ParseError(_TOOL, "no <nmaprun> element")
        return self.root

    def children(self) -> Iterator[Element]:
        builder = TreeBuilder()
        parser = DefusedXMLParser(target=builder)
        expat = parser.parser
        build_start, build_end = builder.start, builder.end
        finished: list[Element] = []
        root = Element("nmaprun")

        def start_root(tag: str, attrib: dict[str, str]) -> None:
            nonlocal root
            if tag != "nmaprun":
                raise ParseError(_TOOL, f"root element is <{_qualified(tag)}>, not <nmaprun>")
            self.root = dict(attrib)
            root = build_start(tag, attrib)
            expat.StartElementHandler = build_start

        def end(tag: str) -> None:
            elem = build_end(tag)
            # Only the open top-level child is ever in the root: a finished one leaves it here.
            if len(root) and root[0] is elem:
                finished.append(elem)
                del root[0]

        expat.ordered_attributes = False
        expat.StartElementHandler = start_root
        expat.EndElementHandler = end
        try:
            for chunk in _chunks(self._fp):
                self._head = self._head or chunk
                parser.feed(chunk)
                yield from finished
                finished.clear()
            parser.close()
        except XMLParseError as exc:
            if self.root is None or exc.code not in _TRUNCATION_CODES:
                reason = _xml_error(exc, self.root is None)
                head = self._head.lstrip()
                if self.root is None and head and not head.startswith(b"<"):
                    reason = f"{reason}; {found(head)}"
                raise ParseError(_TOOL, reason) from exc
            self.truncated = True
        except LookupError as exc:  # the XML declaration names an encoding Python lacks
            raise ParseError(_TOOL, f"XML in an {exc}") from exc
        except DefusedXmlException as exc:
            raise ParseError(_TOOL, f"refused a forbidden XML construct: {exc!r}") from exc
        # What expat completed before the end of input or the cut.
        yield from finished


def _chunks(fp: IO[bytes]) -> Iterator[bytes]:
    head = fp.read(_HEAD_SIZE)
    # One tolerance, see the module docstring: licence comments before the XML declaration.
    match = _LEADING_COMMENTS.match(head)
    yield _printable(head[match.end() :] if match else head)
    while chunk := fp.read(_CHUNK_SIZE):
        yield _printable(chunk)


def _printable(chunk: bytes) -> bytes:
    # Older nmap versions copied control characters from service banners into attribute
    # values raw; XML 1.0 forbids them, so expat would refuse the whole scan. They are one
    # byte each in UTF-8 (never part of a multi-byte sequence), so a chunk boundary cannot
    # split one, and replacing them loses only the unprintable byte.
    if _CONTROL.search(chunk) is None:
        return chunk
    return _CONTROL.sub(_REPLACEMENT, chunk)


def _qualified(tag: str) -> str:
    # expat spells a namespaced name "uri}local"; ElementTree's "{uri}local" is the known form.
    return "{" + tag if "}" in tag else tag


# The walkers below take one pass over each element's children instead of ElementPath
# lookups: a large scan is millions of elements, and this is the parser's hottest code.
# Where nmap writes an element once, the first one counts, as `find` would have it.


def _host(elem: Element) -> Host:
    status: Element | None = None
    hostscript: Element | None = None
    addresses: list[Address] = []
    hostnames: list[Hostname] = []
    ports: list[Port] = []
    extraports: list[ExtraPorts] = []
    os_matches: list[OsMatch] = []
    for child in elem:
        match child.tag:
            case "address":
                addresses.append(
                    Address(
                        addr=child.get("addr", ""),
                        addrtype=_intern(child.get("addrtype", "")),
                        vendor=child.get("vendor", ""),
                    )
                )
            case "hostnames":
                hostnames += (
                    Hostname(name=name.get("name", ""), type=_intern(name.get("type", "")))
                    for name in child
                    if name.tag == "hostname"
                )
            case "ports":
                for port in child:
                    if port.tag == "port":
                        ports.append(_port(port))
                    elif port.tag == "extraports":
                        extraports.append(
                            ExtraPorts(
                                state=_intern(port.get("state", "")), count=_int(port, "count")
                            )
                        )
            case "os":
                os_matches += (
                    OsMatch(
                        name=match.get("name", ""),
                        accuracy=_optional_int(match.get("accuracy")),
                        cpe=tuple(cpe.text or "" for cpe in match.iter("cpe")),
                    )
                    for match in child
                    if match.tag == "osmatch"
                )
            case "status" if status is None:
                status = child
            case "hostscript" if hostscript is None:
                hostscript = child
    state = _EMPTY if status is None else status.attrib
    return Host(
        status=_intern(state.get("state", "")),
        status_reason=_intern(state.get("reason", "")),
        addresses=tuple(addresses),
        hostnames=tuple(hostnames),
        ports=tuple(ports),
        extraports=tuple(extraports),
        os_matches=tuple(os_matches),
        scripts=_scripts(hostscript),
        start=_optional_int(elem.get("starttime")),
        end=_optional_int(elem.get("endtime")),
    )


def _port(elem: Element) -> Port:
    state = _EMPTY
    service: Service | None = None
    scripts: list[Script] = []
    seen_state = False
    for child in elem:
        tag = child.tag
        if tag == "script":
            scripts.append(_script(child))
        elif tag == "state" and not seen_state:
            state, seen_state = child.attrib, True
        elif tag == "service" and service is None:
            service = _service(child)
    return Port(
        protocol=_intern(elem.get("protocol", "")),
        portid=_int(elem, "portid"),
        state=_intern(state.get("state", "")),
        reason=_intern(state.get("reason", "")),
        service=service,
        scripts=tuple(scripts),
    )


def _service(elem: Element) -> Service:
    get = elem.get
    return Service(
        name=_intern(get("name", "")),
        product=_intern(get("product", "")),
        version=_intern(get("version", "")),
        extrainfo=_intern(get("extrainfo", "")),
        tunnel=_intern(get("tunnel", "")),
        method=_intern(get("method", "")),
        conf=_optional_int(get("conf")),
        cpe=tuple(_intern(cpe.text or "") for cpe in elem if cpe.tag == "cpe"),
    )


def _scripts(parent: Element | None) -> tuple[Script, ...]:
    if parent is None:
        return ()
    return tuple(_script(script) for script in parent if script.tag == "script")


def _script(elem: Element) -> Script:
    elems, tables = _structure(elem, 1)
    return Script(
        id=_intern(elem.get("id", "")), output=elem.get("output", ""), elems=elems, tables=tables
    )


def _structure(elem: Element, depth: int) -> tuple[tuple[ScriptElem, ...], tuple[ScriptTable, ...]]:
    """The `<elem>`s and `<table>`s directly inside an NSE script or table."""
    if depth > _MAX_TABLE_DEPTH:
        raise ParseError(_TOOL, f"NSE tables nested deeper than {_MAX_TABLE_DEPTH}")
    elems: list[ScriptElem] = []
    tables: list[ScriptTable] = []
    # vulners and ssl-enum-ciphers output is thousands of these per host.
    for child in elem:
        tag = child.tag
        key = child.get("key")
        if key is not None:
            key = _intern(key)
        if tag == "elem":
            elems.append(ScriptElem(key=key, value=_intern(child.text or "")))
        elif tag == "table":
            table_elems, table_tables = _structure(child, depth + 1)
            tables.append(ScriptTable(key=key, elems=table_elems, tables=table_tables))
    return tuple(elems), tuple(tables)


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
