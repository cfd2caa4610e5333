"""nmap XML elements to `contracts.nmap` Structs: the walkers `parse` runs over each
top-level element it reads. Pure."""

from __future__ import annotations

import sys
from xml.etree.ElementTree import Element

from contracts.nmap import (
    Address,
    ExtraPorts,
    Host,
    Hostname,
    OsMatch,
    Port,
    ScanInfo,
    Script,
    ScriptElem,
    ScriptTable,
    Service,
)
from scanners.errors import ParseError

_TOOL = "nmap"
# NSE tables nest as deep as a script's Lua data; none comes near this, and the bound keeps
# hostile input from turning into a RecursionError.
_MAX_TABLE_DEPTH = 64
# Values that repeat across ports and hosts ("tcp", "open", "OpenSSH", NSE keys such as "cvss"
# and "id"): one shared string each instead of one per occurrence. On a large scan that is
# most of the strings the result holds.
_intern = sys.intern
# What a missing optional child reads as: every attribute then takes its default, which is
# what nmap versions that never wrote the element meant.
_EMPTY: dict[str, str] = {}

# The walkers below take one pass over each element's children instead of ElementPath
# lookups: a large scan is millions of elements, and this is the parser's hottest code.
# Where nmap writes an element once, the first one counts, as `find` would have it.


def host(elem: Element) -> Host:
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
                        accuracy=optional_int(match.get("accuracy")),
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
        scripts=scripts_of(hostscript),
        start=optional_int(elem.get("starttime")),
        end=optional_int(elem.get("endtime")),
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
        conf=optional_int(get("conf")),
        cpe=tuple(_intern(cpe.text or "") for cpe in elem if cpe.tag == "cpe"),
    )


def scripts_of(parent: Element | None) -> tuple[Script, ...]:
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


def scan_info(elem: Element) -> ScanInfo:
    return ScanInfo(
        type=elem.get("type", ""),
        protocol=elem.get("protocol", ""),
        services=elem.get("services", ""),
    )


def child(elem: Element, tag: str) -> Element:
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


def optional_int(text: str | None) -> int | None:
    """Metadata (times, confidence) that old nmap versions sometimes omit or spell oddly."""
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def optional_float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None
