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


OutputMessage = OutputLine | EndOfOutput
