"""`jetscan parked`: what the handlers gave up on, and putting it back once the cause is fixed.

PARKED keeps JetStream's advisories, which name the stream and sequence of the message; the
message itself stays in its stream until that stream's `max_age`. Replay publishes a copy to
the same subject, where the same durable consumer picks it up: the handlers are idempotent, so
a replay that meets an already-applied effect changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.parked import MAX_DELIVER, TERMINATED, advisory_decoder

STREAM = "PARKED"
_MSG_ID = "Nats-Msg-Id"


class Parked(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    at: datetime
    kind: str
    stream: str
    stream_seq: int
    consumer: str
    deliveries: int
    reason: str
    # Of the parked message; empty once its stream no longer holds it.
    subject: str = ""
    size: int = 0


class ReplayError(Exception):
    """A parked entry that cannot be replayed, with the reason."""


def _kind(advisory_type: str, reason: str, deliveries: int) -> tuple[str, str]:
    if advisory_type == TERMINATED:
        return "terminated", reason or "terminated by its handler"
    if advisory_type == MAX_DELIVER:
        return "max_deliveries", f"gave up after {deliveries} deliveries (see the role's log)"
    return advisory_type, reason


async def get(js: JetStreamContext, seq: int) -> Parked:
    try:
        raw = await js.get_msg(STREAM, seq)
    except NotFoundError:
        raise ReplayError(f"no parked message {seq} in {STREAM}") from None
    return await _parked(js, seq, raw.data or b"")


async def _parked(js: JetStreamContext, seq: int, data: bytes) -> Parked:
    adv = advisory_decoder.decode(data)
    kind, reason = _kind(adv.type, adv.reason, adv.deliveries)
    subject, size = "", 0
    try:
        original = await js.get_msg(adv.stream, adv.stream_seq)
        subject, size = original.subject or "", len(original.data or b"")
    except NotFoundError:
        pass
    return Parked(
        seq=seq,
        at=adv.timestamp,
        kind=kind,
        stream=adv.stream,
        stream_seq=adv.stream_seq,
        consumer=adv.consumer,
        deliveries=adv.deliveries,
        reason=reason,
        subject=subject,
        size=size,
    )


async def list_parked(js: JetStreamContext, *, limit: int = 100) -> list[Parked]:
    """The oldest `limit` parked messages still in PARKED, in the order they were parked."""
    out: list[Parked] = []
    seq = 1
    while len(out) < limit:
        try:
            # The next one at or after `seq`: replayed entries leave gaps.
            raw = await js.get_msg(STREAM, seq, subject=">", next=True)
        except NotFoundError:
            break
        assert raw.seq is not None
        out.append(await _parked(js, raw.seq, raw.data or b""))
        seq = raw.seq + 1
    return out


async def count(js: JetStreamContext) -> int:
    """How many messages are parked now."""
    return int((await js.stream_info(STREAM)).state.messages)


async def replay(js: JetStreamContext, seq: int) -> Parked:
    """Publish parked message `seq` again on its subject, then drop it from PARKED.

    The copy's `Nats-Msg-Id` is derived from the parked entry, so replaying the same entry
    twice (a retried command) queues one copy.
    """
    parked = await get(js, seq)
    try:
        original = await js.get_msg(parked.stream, parked.stream_seq)
    except NotFoundError:
        raise ReplayError(
            f"parked message {seq} is gone from {parked.stream} (sequence"
            f" {parked.stream_seq}, past the stream's max_age): nothing to replay"
        ) from None
    headers = {k: v for k, v in (original.headers or {}).items() if k != _MSG_ID}
    headers[_MSG_ID] = subjects.msg_id("parked", str(seq), "replay")
    assert original.subject is not None
    await js.publish(original.subject, original.data or b"", headers=headers)
    await js.delete_msg(STREAM, seq)
    return parked


HEADERS = ("SEQ", "PARKED", "KIND", "STREAM", "STREAM_SEQ", "SUBJECT", "CONSUMER", "REASON")


def rows(entries: list[Parked]) -> list[list[str]]:
    return [
        [
            str(p.seq),
            p.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            p.kind,
            p.stream,
            str(p.stream_seq),
            p.subject or "(gone)",
            p.consumer,
            p.reason,
        ]
        for p in entries
    ]
