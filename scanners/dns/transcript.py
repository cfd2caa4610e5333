"""The recon output file: JSON lines written by `scanners.dns.recon`, read by `parse`.

subfinder's and dnsx's own lines are kept verbatim inside it (as strings), so the stored
artifact is the raw output of both tools plus what the runner decided around them: the
domain and scope it judged names against, the names it handed to the resolver, the steps
that failed, and whether it finished. The dnspython resolver writes dnsx's line format.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec


class Start(msgspec.Struct, frozen=True, kw_only=True, tag="start", tag_field="type"):
    """The first line: what the run was for and how it resolves."""

    domain: str
    scope: str = ""
    resolver: str = ""
    resolvers: tuple[str, ...] = ()
    # "name version" of what the runner is and runs in-process (see recon.versions).
    versions: tuple[str, ...] = ()


class SubfinderLine(msgspec.Struct, frozen=True, tag="subfinder", tag_field="type"):
    line: str


class Resolve(msgspec.Struct, frozen=True, tag="resolve", tag_field="type"):
    """The in-scope names handed to the resolver, before any of its answers."""

    names: tuple[str, ...]


class DnsxLine(msgspec.Struct, frozen=True, tag="dnsx", tag_field="type"):
    line: str


class Failure(msgspec.Struct, frozen=True, tag="error", tag_field="type"):
    """A step that did not complete: `step` is "subfinder", "dnsx" or "dnspython"."""

    step: str
    message: str


class End(msgspec.Struct, frozen=True, tag="end", tag_field="type"):
    """The last line; a file without it is from a run that was stopped."""


Entry: TypeAlias = Start | SubfinderLine | Resolve | DnsxLine | Failure | End

_encoder = msgspec.json.Encoder()
decoder = msgspec.json.Decoder(Entry)


def encode(entry: Entry) -> bytes:
    """One line of the file, newline included."""
    return _encoder.encode(entry) + b"\n"
