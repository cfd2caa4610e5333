"""Reading what a job left on the bus, message by message, without creating consumers."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts.output import OutputMessage
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


async def output(js: JetStreamContext, scan_id: str) -> list[OutputMessage]:
    msgs = await stored(js, "OUTPUT", f"scan.output.{scan_id}")
    return [msgspec.json.decode(m.data or b"", type=OutputMessage) for m in msgs]


async def results(js: JetStreamContext, tool: str, scan_id: str) -> list[ScanResult]:
    msgs = await stored(js, "RESULTS", f"scan.results.{tool}")
    return [r for r in (decode(m, ScanResult) for m in msgs) if r.scan_id == scan_id]
