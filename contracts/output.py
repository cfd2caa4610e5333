"""Console lines of a running scan: `scan.output.<id>`."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class Stream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


class OutputLine(msgspec.Struct, frozen=True, kw_only=True, tag="line"):
    """One console line; `seq` counts from 1 without gaps within a scan."""

    scan_id: str
    seq: int
    time: datetime
    stream: Stream
    text: str


class EndOfOutput(msgspec.Struct, frozen=True, kw_only=True, tag="end"):
    """The last message on a scan's output subject: no line follows it."""

    scan_id: str
    seq: int
    time: datetime
    exit_code: int | None = None


class OutputLines(msgspec.Struct, frozen=True, kw_only=True, tag="lines"):
    """Several consecutive console lines in one message: `lines[i].seq == seq + i`.

    A worker sends whatever lines queued up while its previous message was on the way, so
    a fast scanner costs one JetStream message per batch rather than per line, and a slow
    one still sends each line as soon as it is read.
    """

    scan_id: str
    seq: int
    lines: tuple[OutputLine, ...]


OutputMessage = OutputLine | OutputLines | EndOfOutput


def lines_of(message: OutputMessage) -> tuple[OutputLine, ...]:
    """The console lines a message carries (none for `EndOfOutput`)."""
    if isinstance(message, OutputLine):
        return (message,)
    if isinstance(message, OutputLines):
        return message.lines
    return ()


class ListOutput(msgspec.Struct, frozen=True, kw_only=True):
    """`query.output.list`: a scan's stored console lines with `seq > after_seq`, in order.

    The durable copy kept by ingest, for lines the OUTPUT stream no longer holds. A page
    shorter than `limit` is the last one for now; ask again after its last `seq`.
    """

    scan_id: str
    after_seq: int = 0
    limit: int = 1000


class OutputPage(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[OutputLine] = msgspec.field(default_factory=list)
