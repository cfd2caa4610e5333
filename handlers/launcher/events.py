"""What the launcher publishes and keys: lifecycle events, `launches` keys, console ends."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from contracts import subjects, tracing, wire
from contracts.output import EndOfOutput, OutputLine, OutputLines, OutputMessage
from contracts.scans import ScanEvent, ScanStatus, event_id


async def publish_event(
    js: JetStreamContext,
    scan_id: str,
    status: ScanStatus,
    *,
    exit_code: int | None = None,
    reason: str = "",
    attempt: int = 1,
) -> bool:
    """Publish a lifecycle event; return False when JetStream says it was a duplicate."""
    event = ScanEvent(
        scan_id=scan_id,
        status=status,
        at=datetime.now(UTC),
        exit_code=exit_code,
        reason=reason,
        attempt=attempt,
    )
    ack = await js.publish(
        subjects.scan_event(scan_id, status.value),
        wire.encode(event),
        headers=tracing.inject({"Nats-Msg-Id": event_id(scan_id, status, attempt)}),
        timeout=5,
    )
    return not ack.duplicate


def guard_key(scan_id: str, attempt: int) -> str:
    """The attempt's key in `launches`: the scan id for the first, `<id>.<n>` after."""
    return scan_id if attempt <= 1 else f"{scan_id}.{attempt}"


def last_seq(message: OutputMessage) -> int:
    """The highest console `seq` a message of `scan.output.<id>` carries."""
    match message:
        case OutputLines(seq=seq, lines=lines):
            return seq + len(lines) - 1
        case OutputLine(seq=seq):
            return seq
        case EndOfOutput(seq=seq):
            return seq - 1  # the number after the last line
    return 0
