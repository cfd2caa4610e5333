"""Reading what a job left on the bus, message by message, without creating consumers."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.output import EndOfOutput, OutputLine, OutputLines, OutputMessage, lines_of
from contracts.results import ScanResult

T = TypeVar("T")


async def stored(js: JetStreamContext, stream: str, subject: str) -> list[RawStreamMsg]:
    """Every message `stream` holds on `subject`, in stream order."""
    found: list[RawStreamMsg] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(msg)
        assert msg.seq is not None
        seq = msg.seq + 1


def decode(msg: RawStreamMsg, kind: type[T]) -> T:
    assert msg.data is not None
    return msgspec.json.decode(msg.data, type=kind)


async def output_messages(js: JetStreamContext, scan_id: str) -> list[OutputMessage]:
    """The scan's OUTPUT messages as sent: lines, batches of lines, the end."""
    msgs = await stored(js, "OUTPUT", f"scan.output.{scan_id}")
    return [msgspec.json.decode(m.data or b"", type=OutputMessage) for m in msgs]


async def output(js: JetStreamContext, scan_id: str) -> list[OutputLine | EndOfOutput]:
    """The scan's console as a reader sees it: batches opened into their lines."""
    flat: list[OutputLine | EndOfOutput] = []
    for message in await output_messages(js, scan_id):
        if isinstance(message, OutputLines):
            assert [ln.seq for ln in message.lines] == list(
                range(message.seq, message.seq + len(message.lines))
            )
        flat.extend(lines_of(message) if not isinstance(message, EndOfOutput) else (message,))
    return flat


async def results(js: JetStreamContext, tool: str, scan_id: str) -> list[ScanResult]:
    msgs = await stored(js, "RESULTS", subjects.scan_result(tool, scan_id))
    return [r for r in (decode(m, ScanResult) for m in msgs) if r.scan_id == scan_id]
