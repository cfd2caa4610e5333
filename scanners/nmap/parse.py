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
    Host,
    NmapRun,
    ScanInfo,
    Script,
)
from scanners.errors import ParseError
from scanners.nmap import elements
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
_HEAD_SIZE = 8192
_CHUNK_SIZE = 1 << 16
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
                yield elements.host(elem)
            case "scaninfo":
                scan_info.append(elements.scan_info(elem))
            case "prescript":
                prescripts += elements.scripts_of(elem)
            case "postscript":
                postscripts += elements.scripts_of(elem)
            case "runstats":
                finished = dict(elements.child(elem, "finished").attrib)
                counts = dict(elements.child(elem, "hosts").attrib)
    run = document.attrib
    # nmap writes <runstats> last, when it stops on its own; without it, or with an error
    # exit, the hosts are what it got through, not what was asked for.
    partial = document.truncated or finished is None or finished.get("exit") == "error"
    done = finished or {}
    yield NmapRun(
        args=run.get("args", ""),
        version=run.get("version", ""),
        xml_output_version=run.get("xmloutputversion", ""),
        start=elements.optional_int(run.get("start")),
        end=elements.optional_int(done.get("time")),
        elapsed_seconds=elements.optional_float(done.get("elapsed")),
        exit=done.get("exit", ""),
        error_message=done.get("errormsg", ""),
        scan_info=tuple(scan_info),
        hosts_up=elements.optional_int(counts.get("up")),
        hosts_down=elements.optional_int(counts.get("down")),
        hosts_total=elements.optional_int(counts.get("total")),
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


def _xml_error(exc: XMLParseError, before_root: bool) -> str:
    if before_root and exc.code == expat_errors.codes[expat_errors.XML_ERROR_NO_ELEMENTS]:
        return "no XML element at all: empty output, or nmap never started writing"
    return f"not well-formed XML: {exc}"
