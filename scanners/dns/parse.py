"""subfinder `-oJ`, dnsx `-json` and the recon file that holds both, to findings. Pure, total.

Three entry points, one model: every file becomes `DnsRecon` data (a `Subdomain` per name)
and findings from `scanners.dns.findings`.
- `parse`/`parse_stream`: the recon runner's file (`transcript`). Names are judged against the
  domain and deployment scope it records. A missing end line means the run was stopped:
  the result is partial, not an error. A tool line inside it that does not decode is
  recorded in `errors` (the tool misbehaved, the file did not).
- `parse_subfinder*`/`parse_dnsx*`: a bare tool file, as `jetscan parse subfinder FILE`
  reads it. There is no scan around it, so a subfinder name is judged only against its
  line's `input` domain (when the line has one) and dnsx names are all taken as in scope.
Every file is read as a sequence of JSON objects: one per line as the tools write them, or
pretty-printed over several lines, or several on a line. Blank lines are skipped, and an
object cut off by the end of the file before a final newline (a killed writer) makes the
result partial; anything else that is not a JSON object is a `ParseError` naming the line
and the reason (and, for text that is no JSON at all, what it starts with).
"""

from __future__ import annotations

import io
import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TypeVar

import msgspec

from contracts.dns import DnsRecon, Subdomain
from scanners.dns import transcript
from scanners.dns.findings import recon_findings
from scanners.dns.names import addresses_outside, judge
from scanners.errors import ParseError
from scanners.output import ToolOutput, found, utf8
from scanners.scope import Scope

T = TypeVar("T")
_SCANNER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")
# A subfinder or dnsx record is well under a kilobyte; gathering stops long before memory
# or the rescans of an unfinished object could matter.
_MAX_OBJECT = 1 << 20
RECORD_FIELDS = ("a", "aaaa", "cname", "mx", "ns", "txt")


class SubfinderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One `-oJ` line. Old versions write no `input`; `-cs` writes `sources` for `source`."""

    host: str
    input: str = ""
    source: str = ""
    sources: tuple[str, ...] = ()


class DnsxRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a dnsx `-json` line a finding uses; the rest (raw, timestamp) is ignored."""

    host: str
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    cname: tuple[str, ...] = ()
    mx: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    txt: tuple[str, ...] = ()
    status_code: str = ""


_subfinder = msgspec.json.Decoder(SubfinderRecord)
_dnsx = msgspec.json.Decoder(DnsxRecord)


def decode_subfinder(line: bytes | str) -> SubfinderRecord:
    """One subfinder line, or msgspec's DecodeError/ValidationError."""
    return _subfinder.decode(line)


def decode_dnsx(line: bytes | str) -> DnsxRecord:
    """One dnsx line, or msgspec's DecodeError/ValidationError."""
    return _dnsx.decode(line)


def parse(data: bytes) -> ToolOutput:
    return parse_stream(io.BytesIO(data))


def parse_stream(fp: IO[bytes]) -> ToolOutput:
    lines = _Lines(fp, "dns", transcript.decoder.decode)
    first = next(lines, None)
    if first is None:
        raise ParseError("dns", "empty: the recon runner wrote nothing")
    if not isinstance(first, transcript.Start):
        raise ParseError("dns", f"expected the start record first, got {type(first).__name__}")
    if reason := judge(first.domain, "", None)[1]:
        raise ParseError("dns", f"start record: domain {first.domain!r} is {reason}")
    try:
        scope = Scope.parse(first.scope)
    except ValueError as exc:
        raise ParseError("dns", f"start record: scope: {exc}") from exc
    names = _Names(first.domain, scope)
    names.add(first.domain)
    errors: list[str] = []
    ended = False
    for entry in lines:
        match entry:
            case transcript.SubfinderLine(line=line):
                _add_tool_line(line, decode_subfinder, names.add_subfinder, "subfinder", errors)
            case transcript.Resolve(names=resolved):
                for name in resolved:
                    names.add(name)
            case transcript.DnsxLine(line=line):
                _add_tool_line(line, decode_dnsx, names.add_dnsx, "dnsx", errors)
            case transcript.Failure(step=step, message=message):
                errors.append(f"{step}: {message}")
            case transcript.End():
                ended = True
            case transcript.Start():
                raise ParseError("dns", "a second start record: two runs in one file")
    partial = not ended or bool(errors) or lines.cut
    recon = DnsRecon(
        domain=first.domain,
        resolver=first.resolver,
        resolvers=first.resolvers,
        versions=first.versions,
        subdomains=names.subdomains(),
        errors=tuple(errors),
        partial=partial,
    )
    return ToolOutput(findings=tuple(recon_findings(recon)), data=recon, partial=partial)


def parse_subfinder(data: bytes) -> ToolOutput:
    return parse_subfinder_stream(io.BytesIO(data))


def parse_subfinder_stream(fp: IO[bytes]) -> ToolOutput:
    lines = _Lines(fp, "subfinder", decode_subfinder)
    names = _Names("", None)
    inputs: set[str] = set()
    for record in lines:
        names.add_subfinder(record)
        inputs.add(record.input)
    return _bare(names, inputs.pop() if len(inputs) == 1 else "", lines.cut)


def parse_dnsx(data: bytes) -> ToolOutput:
    return parse_dnsx_stream(io.BytesIO(data))


def parse_dnsx_stream(fp: IO[bytes]) -> ToolOutput:
    lines = _Lines(fp, "dnsx", decode_dnsx)
    names = _Names("", None)
    for record in lines:
        names.add_dnsx(record)
    return _bare(names, "", lines.cut, resolver="dnsx")


def _bare(names: _Names, domain: str, partial: bool, resolver: str = "") -> ToolOutput:
    recon = DnsRecon(
        domain=domain, resolver=resolver, subdomains=names.subdomains(), partial=partial
    )
    return ToolOutput(findings=tuple(recon_findings(recon)), data=recon, partial=partial)


class _Lines(Iterator[T]):
    """The JSON objects of a file, decoded: one per line (JSON lines, what the tools write),
    or pretty-printed over several lines, or several on one line (what a user's `jq .` or
    editor leaves). `cut` turns true when the file ends inside an object that was never
    finished and the last line has no newline (a killed writer).

    A line that decodes alone takes the fast path; any other text is gathered line by line
    until Python's JSON scanner finds complete objects in it. Gathering stops at the first
    error that more text could not mend (one before the end of what was gathered), so a
    broken line costs one scan, and an object may not outgrow `_MAX_OBJECT`.
    """

    def __init__(self, fp: IO[bytes], tool: str, decode: Callable[[bytes], T]) -> None:
        self._numbered = enumerate(fp, start=1)
        self._tool = tool
        self._decode = decode
        self._ready: deque[T] = deque()
        self._pending: list[bytes] = []
        self._first = 0  # the line the gathered text starts on
        self.cut = False

    def __iter__(self) -> _Lines[T]:
        return self

    def __next__(self) -> T:
        while not self._ready:
            if not self._read():
                raise StopIteration
        return self._ready.popleft()

    def _read(self) -> bool:
        """Decode what the next lines hold; False at the end of the file with nothing left."""
        for number, raw in self._numbered:
            if not self._pending:
                text = raw.strip()
                if not text:
                    continue
                try:
                    self._ready.append(self._typed(utf8(text), number))
                    return True
                except msgspec.DecodeError:
                    self._first = number
            self._pending.append(raw)
            # Only the file's last line can lack its newline.
            if self._scan(final=not raw.endswith(b"\n")):
                return True
        return bool(self._pending) and self._scan(final=True)

    def _scan(self, final: bool) -> bool:
        gathered = utf8(b"".join(self._pending)).decode()
        self._pending.clear()
        at, found_any = _skip_space(gathered, 0), False
        while at < len(gathered):
            line = self._first + gathered.count("\n", 0, at)
            if gathered[at] != "{":
                raise ParseError(
                    self._tool, f"line {line}: not JSON objects: {found(gathered[at:].encode())}"
                )
            try:
                end = _SCANNER.raw_decode(gathered, at)[1]
            except json.JSONDecodeError as exc:
                unfinished = exc.pos >= len(gathered.rstrip())
                if final and not gathered.endswith("\n"):
                    self.cut = True
                elif unfinished and not final and len(gathered) - at <= _MAX_OBJECT:
                    self._pending.append(gathered[at:].encode())
                    self._first = line
                elif unfinished:
                    why = (
                        "the object starting here is not finished at the end of the file"
                        if final
                        else f"no complete JSON object in {_MAX_OBJECT} bytes"
                    )
                    raise ParseError(self._tool, f"line {line}: not JSON ({why})") from exc
                else:
                    where = self._first + gathered.count("\n", 0, exc.pos)
                    raise ParseError(self._tool, f"line {where}: not JSON ({exc.msg})") from exc
                return found_any
            self._ready.append(self._typed(gathered[at:end].encode(), line))
            found_any = True
            at = _skip_space(gathered, end)
        return found_any

    def _typed(self, text: bytes, line: int) -> T:
        try:
            return self._decode(text)
        except msgspec.ValidationError as exc:
            raise ParseError(self._tool, f"line {line}: {exc}") from exc


def _skip_space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _add_tool_line(
    line: str,
    decode: Callable[[str], T],
    add: Callable[[T], None],
    tool: str,
    errors: list[str],
) -> None:
    try:
        add(decode(line))
    except msgspec.DecodeError as exc:
        errors.append(f"{tool} wrote a line that does not decode ({exc}): {line[:200]!r}")


@dataclass(slots=True)
class _Name:
    """What is known of one name so far, in the order it was learned."""

    out_of_scope: str
    sources: list[str] = field(default_factory=list)
    resolved: bool = False
    status: str = ""
    records: dict[str, list[str]] = field(default_factory=dict)


class _Names:
    """Names in first-seen order, each judged once against the domain and scope.

    A name comes up three times in a run (subfinder, the resolver's input, its answer);
    judging is most of the parse's cost, so each spelling is judged only once.
    """

    def __init__(self, domain: str, scope: Scope | None) -> None:
        self.domain = domain
        self.scope = scope
        self.names: dict[str, _Name] = {}
        self._judged: dict[tuple[str, str], str] = {}

    def add(self, text: str, domain: str = "") -> _Name:
        domain = domain or self.domain
        name = self._judged.get((text, domain))
        if name is None:
            name, reason = judge(text, domain, self.scope)
            self._judged[text, domain] = name
            if name not in self.names:
                self.names[name] = _Name(out_of_scope=reason)
        return self.names[name]

    def add_subfinder(self, record: SubfinderRecord) -> None:
        # With no scan domain (a bare file), the line's own input is the domain it was for.
        found = self.add(record.host, "" if self.domain else record.input)
        for source in (record.source, *record.sources):
            if source and source not in found.sources:
                found.sources.append(source)

    def add_dnsx(self, record: DnsxRecord) -> None:
        found = self.add(record.host)
        found.resolved = True
        found.status = record.status_code or found.status
        for name in RECORD_FIELDS:
            values = found.records.setdefault(name, [])
            for value in getattr(record, name):
                if value not in values:
                    values.append(value)

    def subdomains(self) -> tuple[Subdomain, ...]:
        return tuple(self._subdomain(name, found) for name, found in self.names.items())

    def _subdomain(self, name: str, found: _Name) -> Subdomain:
        records = {k: tuple(v) for k, v in found.records.items() if v}
        addresses = records.get("a", ()) + records.get("aaaa", ())
        return Subdomain(
            name=name,
            sources=tuple(found.sources),
            out_of_scope=found.out_of_scope,
            resolved=found.resolved,
            status=found.status,
            addresses_outside_scope=addresses_outside(addresses, self.scope),
            **records,
        )
