"""The CLI side of the audit log: records of the operator's own mutations, and reading them.

The records live in the EVENTS stream (30 days) on `evt.audit.<source>.<action>`; `jetscan
audit` reads them with an ordered consumer from `--since` on, filtered by `--who`.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.js import JetStreamContext, api
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts import subjects, wire
from contracts.audit import AuditRecord

_decode = msgspec.json.Decoder(AuditRecord)
_QUIET = 0.5  # seconds without a record: the consumer has caught up


def origin() -> str:
    """Where a CLI command came from: the operator's user and host."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "?"
    return f"{user}@{socket.gethostname()}"


async def record(js: JetStreamContext, action: str, target: str = "") -> None:
    """Record one CLI mutation (as the admin's NATS user, the CLI's only identity)."""
    entry = AuditRecord(
        id=uuid.uuid4().hex,
        at=datetime.now(UTC),
        source="cli",
        action=action,
        who="cli-admin",
        role="admin",
        origin=origin(),
        target=target,
    )
    await js.publish(
        subjects.audit("cli", action),
        wire.encode(entry),
        headers={api.Header.MSG_ID: f"audit:{entry.id}"},
        timeout=5,
    )


async def read(js: JetStreamContext, since: datetime, who: str = "") -> list[AuditRecord]:
    """Every record from `since` on, oldest first; only `who`'s when given."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since.astimezone(UTC),
    )
    sub = await js.subscribe(subjects.AUDIT, ordered_consumer=True, config=config)
    found: list[AuditRecord] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=_QUIET)
            except (TimeoutError, nats.errors.TimeoutError):
                return found
            try:
                entry = _decode.decode(msg.data)
            except wire.UNDECODABLE:
                continue
            if not who or entry.who == who:
                found.append(entry)
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()
