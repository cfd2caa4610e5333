"""A scan's result written to files as its output is parsed, then read back a part at a time.

Held as Python objects, a large nmap scan's hosts and findings outgrow a job's memory limit
(a 100 MB XML took ~900 MB to parse, encode and split in memory). A tool that parses in
`Piece`s (`ToolSpec.iter_pieces`) is spooled instead: each piece's findings go to a
JSON-lines file as soon as it is parsed (a set of fingerprint digests folds findings seen
before, keeping the first, as `parse_stream` does) and its item straight into the tool
data's file, whose other fields, known only at the end, follow the items. What stays in
memory is one piece, the digests, and the byte ranges that cut the findings into parts.
Other tools' outputs are parsed whole as before and written the same way, so the job has
one path. On disk a result takes about four times its output file: a generated 101 MB nmap
XML spooled to 224 MB of findings and 92 MB of data, beside the XML itself.

Parts are cut by each finding's encoded size: at most half a part's byte budget of findings
each (a finding bigger than that goes alone), leaving the rest for the envelope and, in the
last part, the tool data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from contracts import wire
from contracts.findings import Finding
from contracts.results import ToolData
from scanners import ToolSpec
from scanners.output import Piece, ToolOutput

_findings = msgspec.json.Decoder(tuple[Finding, ...])
_data = msgspec.json.Decoder(ToolData)


@dataclass
class Spooled:
    """Where a spooled result lies: `slices` are the findings file's byte ranges, one per part
    (none when there are no findings); the tool data is `data_size` bytes of JSON."""

    partial: bool
    findings_path: Path
    data_path: Path
    slices: list[tuple[int, int]] = field(default_factory=list)
    data_size: int = 0
    # The scanner's version (`ToolSpec.version`), read here: the data may be too big to
    # load again.
    version: str = ""

    @property
    def parts(self) -> int:
        return max(len(self.slices), 1)

    def findings(self, part: int) -> tuple[Finding, ...]:
        """The findings of part `part` (1-based)."""
        if not self.slices:
            return ()
        start, end = self.slices[part - 1]
        with self.findings_path.open("rb") as fp:
            fp.seek(start)
            lines = fp.read(end - start)
        found: tuple[Finding, ...] = _findings.decode(
            b"[" + lines.rstrip(b"\n").replace(b"\n", b",") + b"]"
        )
        return found

    def data(self) -> ToolData:
        """The tool data, decoded: for data small enough to travel in a message."""
        decoded: ToolData = _data.decode(self.data_path.read_bytes())
        return decoded


def spool(spec: ToolSpec[Any], output: IO[bytes], into: Path, part_bytes: int) -> Spooled:
    """Parse `output` with `spec` into files under `into` (an existing, empty directory).

    Raises the parser's `ParseError`; the files are then the caller's to remove.
    """
    spooled = Spooled(
        partial=False, findings_path=into / "findings.jsonl", data_path=into / "data.json"
    )
    budget = max(part_bytes // 2, 1)
    seen: set[bytes] = set()
    rest = None
    with spooled.findings_path.open("wb") as findings, spooled.data_path.open("wb") as data:
        start = used = 0

        def add(finding: Finding) -> None:
            nonlocal start, used
            digest = hashlib.blake2b(finding.fingerprint.encode(), digest_size=16).digest()
            if digest in seen:
                return
            seen.add(digest)
            line = wire.encode(finding) + b"\n"
            offset = findings.tell()
            if used and used + len(line) > budget:
                spooled.slices.append((start, offset))
                start, used = offset, 0
            findings.write(line)
            used += len(line)

        if spec.iter_pieces is None:
            pieces: Iterable[Piece | ToolOutput] = (spec.parse_stream(output),)
        else:
            pieces = spec.iter_pieces(output)
            # The collection comes first and the rest of the tool data, known only at the
            # end, after it: `{"<field>": [<items>], <the rest's fields>}`.
            data.write(b'{"' + spec.pieces_field.encode() + b'":[')
        first = True
        for piece in pieces:
            for finding in piece.findings:
                add(finding)
            if isinstance(piece, Piece):
                data.write(b"" if first else b",")
                data.write(wire.encode(piece.item))
                first = False
            else:
                rest = piece
        if used:
            spooled.slices.append((start, findings.tell()))
        assert isinstance(rest, ToolOutput), "a parse ends with its ToolOutput"
        if spec.iter_pieces is None:
            data.write(wire.encode(rest.data))
        else:
            head = msgspec.to_builtins(rest.data)
            head.pop(spec.pieces_field, None)
            # The tool data always has its tag, so `head` is never `{}`.
            data.write(b"]," + wire.encode(head)[1:])
        spooled.data_size = data.tell()
    spooled.partial = rest.partial
    spooled.version = spec.version(rest.data)
    return spooled
