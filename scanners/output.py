"""What every parser returns: normalised findings plus the tool's own structured data."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.findings import Finding
from contracts.results import ToolData


class ToolOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A parse result. `partial` means the tool stopped early and this is what it got through."""

    findings: tuple[Finding, ...]
    data: ToolData
    partial: bool = False


class Piece(msgspec.Struct, frozen=True, kw_only=True):
    """One element of a large output's main collection (an nmap host) and its findings, as a
    parser that streams hands them over; the `ToolOutput` that ends the stream has the
    collection empty. Findings repeated across pieces are the consumer's to fold."""

    findings: tuple[Finding, ...]
    item: Any


def utf8(data: bytes) -> bytes:
    """`data`, with any byte sequence that is not UTF-8 replaced by U+FFFD.

    msgspec refuses a whole JSON document for one such byte. A scanner that copied a
    server's Latin-1 banner or page into one finding's evidence should cost that evidence
    its odd bytes, not the report all its findings.
    """
    try:
        data.decode()
    except UnicodeDecodeError:
        return data.decode(errors="replace").encode()
    return data


def found(data: bytes) -> str:
    """What a file that is no report at all starts with, for the refusal to name it.

    A Markdown or HTML report saved under a scanner's file name is the usual case: saying
    "Markdown text starting '# Scan report'" tells the user which file they picked.
    """
    text = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        return "an empty file"
    head = text[:240].decode(errors="replace").splitlines()[0].strip()
    if len(head) > 60:
        head = head[:60] + "..."
    lowered = head.lower()
    if lowered.startswith(("<!doctype html", "<html")):
        kind = "an HTML page"
    elif head.startswith(("#", "```", "---", "* ", "- ", "|")):
        kind = "Markdown text"
    elif text.startswith(b"%PDF"):
        kind = "a PDF document"
    else:
        kind = "text"
    return f"found {kind} starting {head!r}"
