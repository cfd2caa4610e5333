"""What nmap saw, as published on `scan.results.nmap` beside the normalised findings.

Field names follow nmap's XML (`portid`, `extrainfo`, `tunnel`) so a reader can check a value
against the raw output. Every field past the identifying ones has a default: new fields are
added with defaults only, and `omit_defaults` keeps the mostly-empty ports and scripts small
on the wire.
"""

from __future__ import annotations

import msgspec


# Subclasses repeat `frozen=True` only because mypy's dataclass_transform does not inherit it.
class _Data(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    # Parsed results are trees of tuples and Structs that never form cycles; a 100 MB scan makes
    # millions of them, and skipping GC tracking saves both memory and collector passes.
    gc=False,
):
    pass


class ScriptElem(_Data, frozen=True):
    """An `<elem>`: a scalar in an NSE script's structured output, keyed inside a table or not."""

    key: str | None = None
    value: str = ""


class ScriptTable(_Data, frozen=True):
    """A `<table>`: a Lua table from structured NSE output, keyed or part of an array."""

    key: str | None = None
    elems: tuple[ScriptElem, ...] = ()
    tables: tuple[ScriptTable, ...] = ()


class Script(_Data, frozen=True):
    """One NSE script result: its human `output` and, when the script provides it, structure."""

    id: str
    output: str = ""
    elems: tuple[ScriptElem, ...] = ()
    tables: tuple[ScriptTable, ...] = ()


class Service(_Data, frozen=True):
    name: str = ""
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    tunnel: str = ""
    method: str = ""
    conf: int | None = None
    cpe: tuple[str, ...] = ()


class Port(_Data, frozen=True):
    protocol: str
    portid: int
    state: str
    reason: str = ""
    service: Service | None = None
    scripts: tuple[Script, ...] = ()


class ExtraPorts(_Data, frozen=True):
    """Ports nmap folded into a count, such as "995 closed"."""

    state: str
    count: int


class Address(_Data, frozen=True):
    addr: str
    addrtype: str
    vendor: str = ""


class Hostname(_Data, frozen=True):
    name: str
    type: str = ""


class OsMatch(_Data, frozen=True):
    name: str
    accuracy: int | None = None
    cpe: tuple[str, ...] = ()


class Host(_Data, frozen=True):
    status: str
    status_reason: str = ""
    addresses: tuple[Address, ...] = ()
    hostnames: tuple[Hostname, ...] = ()
    ports: tuple[Port, ...] = ()
    extraports: tuple[ExtraPorts, ...] = ()
    os_matches: tuple[OsMatch, ...] = ()
    scripts: tuple[Script, ...] = ()
    start: int | None = None
    end: int | None = None


class ScanInfo(_Data, frozen=True):
    type: str
    protocol: str
    services: str = ""


class NmapRun(_Data, frozen=True, tag="nmap", tag_field="kind"):
    """One nmap invocation. `kind` tags it inside the union of every tool's result data.

    `partial` is true when nmap did not finish: the XML stops before `</nmaprun>` (killed or
    timed out) or nmap recorded an error exit; `hosts` then holds only the hosts it completed.
    """

    args: str = ""
    version: str = ""
    xml_output_version: str = ""
    start: int | None = None
    end: int | None = None
    elapsed_seconds: float | None = None
    exit: str = ""
    error_message: str = ""
    scan_info: tuple[ScanInfo, ...] = ()
    hosts: tuple[Host, ...] = ()
    hosts_up: int | None = None
    hosts_down: int | None = None
    hosts_total: int | None = None
    prescripts: tuple[Script, ...] = ()
    postscripts: tuple[Script, ...] = ()
    partial: bool = False
