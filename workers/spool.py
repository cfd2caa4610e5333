"""A scan's result written to files as its output is parsed, then read back a part at a time.

Held as Python objects, a large nmap scan's hosts and findings outgrow a job's memory limit
(a 100 MB XML took ~900 MB to parse, encode and split in memory). A tool that parses in
`Piece`s (`ToolSpec.iter_pieces`) is spooled instead: each piece's findings go to a
JSON-lines file as soon as it is parsed (a set of fingerprint digests folds findings seen
before, keeping the first, as `parse_stream` does) and its item to the tool data's file; the
rest of the tool data, which comes last, is spliced around them. What stays in memory is one
piece, the digests, and the byte ranges that cut the findings into parts. Other tools'
outputs are parsed whole as before and written the same way, so the job has one path.

Parts are cut by each finding's encoded size: at most half a part's byte budget of findings
each (a finding bigger than that goes alone), leaving the rest for the envelope and, in the
last part, the tool data.
"""

from __future__ import annotations

import hashlib
import shutil
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
_COPY_CHUNK = 1 << 20


@dataclass
class Spooled:
    """Where a spooled result lies: `slices` are the findings file's byte ranges, one per part
    (none when there are no findings); the tool data is `data_size` bytes of JSON."""

    partial: bool
    findings_path: Path
    data_path: Path
    slices: list[tuple[int, int]] = field(default_factory=list)
    data_size: int = 0

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
    items_path = into / "items.json"
    rest = None
    with spooled.findings_path.open("wb") as findings, items_path.open("wb") as items:
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

        pieces = spec.iter_pieces(output) if spec.iter_pieces else (spec.parse_stream(output),)
        for piece in pieces:
            for finding in piece.findings:
                add(finding)
            if isinstance(piece, Piece):
                items.write(b"," if items.tell() else b"[")
                items.write(wire.encode(piece.item))
            else:
                rest = piece
        if used:
            spooled.slices.append((start, findings.tell()))
        has_items = items.tell() > 0
        if has_items:
            items.write(b"]")
    assert isinstance(rest, ToolOutput), "a parse ends with its ToolOutput"
    spooled.partial = rest.partial
    spooled.data_size = _write_data(spec, rest, items_path if has_items else None, spooled)
    items_path.unlink()
    return spooled


def _write_data(spec: ToolSpec[Any], rest: ToolOutput, items: Path | None, to: Spooled) -> int:
    """The tool data's JSON in `to.data_path`: `rest.data` with the spooled items spliced in
    as its `spec.pieces_field`, which `rest` leaves empty. Returns its size."""
    if items is None:
        encoded = wire.encode(rest.data)
        to.data_path.write_bytes(encoded)
        return len(encoded)
    head = msgspec.to_builtins(rest.data)
    head.pop(spec.pieces_field, None)
    encoded = wire.encode(head)
    with to.data_path.open("wb") as out, items.open("rb") as spliced:
        # `{...}` becomes `{..., "<field>": [<items>]}`; the tool data always has its tag.
        out.write(encoded[:-1])
        out.write(b',"' + spec.pieces_field.encode() + b'":')
        shutil.copyfileobj(spliced, out, _COPY_CHUNK)
        out.write(b"}")
        return out.tell()
