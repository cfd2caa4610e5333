"""Every parser is total on damaged real output: a result or a ParseError, nothing else.

Each corpus file is cut short at twenty places and has single bytes overwritten, the way
a killed scanner, a full disk or a bad copy leaves a file. `jetscan parse` and the job both
turn a ParseError into a clear message (or a partial result); any other exception would be
a traceback instead. The places are drawn from a generator seeded by the file's name, so a
failure names a case that reproduces.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from scanners import PARSERS, TOOLS
from scanners.errors import ParseError
from scanners.output import ToolOutput, utf8
from tests.corpus import all_files, cases, require

TOOL_DIRS = ("nmap", "zap", "sslyze", "subfinder", "dnsx")
CUTS = 20
OVERWRITES = 12


def damaged(path: Path) -> Iterator[tuple[str, bytes]]:
    data = path.read_bytes()
    rng = random.Random(path.name)
    yield "empty", b""
    if not data:
        return
    for at in sorted({rng.randrange(len(data)) for _ in range(CUTS)}):
        yield f"cut at {at}", data[:at]
    for _ in range(OVERWRITES):
        at, value = rng.randrange(len(data)), rng.randrange(256)
        yield f"byte {at} = {value:#04x}", data[:at] + bytes([value]) + data[at + 1 :]


@pytest.mark.parametrize("path", cases(*TOOL_DIRS))
def test_damaged_output_parses_or_raises_parse_error(path: Path | None) -> None:
    path = require(path, "scanner output")
    tool = path.parent.name
    spec = TOOLS.get(tool)
    streamed = None if spec is None or spec.iter_pieces is None else last_piece(spec.iter_pieces)
    for case, data in damaged(path):
        whole = outcome(PARSERS[tool], data)
        assert isinstance(whole, ToolOutput | ParseError), case
        if streamed is not None:
            last = outcome(streamed, data)
            # Each parser judged on its own: the streamed one must reach the same verdict,
            # not hide behind the other's ParseError.
            assert isinstance(last, ToolOutput | ParseError), case
            assert type(last) is type(whole), (case, whole, last)


def outcome(parse: Callable[[IO[bytes]], object], data: bytes) -> object:
    """What `parse` makes of `data`, or the ParseError it raises; anything else propagates."""
    try:
        return parse(io.BytesIO(data))
    except ParseError as exc:
        return exc


def last_piece(iter_pieces: Callable[[IO[bytes]], Iterator[object]]) -> Callable[..., object]:
    return lambda fp: list(iter_pieces(fp))[-1]


def test_utf8_keeps_valid_text_and_replaces_what_is_not() -> None:
    text = "héllo ✓".encode()
    assert utf8(text) is text
    assert utf8(b"caf\xe9 \xff ok") == "caf\ufffd \ufffd ok".encode()
    assert utf8(b"cut \xe2\x9c") == "cut \ufffd".encode()


def _zap_json_with_latin1_evidence() -> tuple[bytes, bytes]:
    """A real ZAP JSON report, and the same with one evidence string in Latin-1."""
    for path in all_files("zap"):
        data = path.read_bytes()
        at = data.find(b'"evidence": "')
        if at >= 0:
            at += len(b'"evidence": "')
            return data, data[:at] + b"caf\xe9 " + data[at:]
    pytest.fail("no ZAP JSON report in the corpus has an evidence string")


def test_a_stray_latin1_byte_costs_its_evidence_not_the_report() -> None:
    # msgspec refuses a whole document for one invalid UTF-8 byte; the parsers read such
    # a report with that byte replaced (U+FFFD) instead of failing it.
    clean, latin1 = _zap_json_with_latin1_evidence()
    before = TOOLS["zap"].parse(clean)
    after = TOOLS["zap"].parse(latin1)
    assert len(after.findings) == len(before.findings) > 0
    assert any("caf\ufffd " in str(f.evidence) for f in after.findings)


def test_a_latin1_byte_in_a_subfinder_line_keeps_the_line() -> None:
    lines = b'{"host":"a.example.com","source":"crtsh"}\n{"host":"b.example.com","source":"\xe9"}\n'
    out = PARSERS["subfinder"](io.BytesIO(lines))
    assert not out.partial
    names = {s.name for s in out.data.subdomains}  # type: ignore[union-attr]
    assert names == {"a.example.com", "b.example.com"}


@pytest.mark.parametrize("tool", ["nmap", "zap", "sslyze"])
def test_xml_declaring_an_unknown_encoding_is_a_parse_error(tool: str) -> None:
    # expat asks Python for the codec and gets LookupError, which is not an XML error.
    data = b'<?xml version="1.0" encoding="UTF-4"?>\n<document/>\n'
    with pytest.raises(ParseError, match="unknown encoding: UTF-4"):
        PARSERS[tool](io.BytesIO(data))
