"""Every mutating RPC is recorded before it takes effect: an `AuditRecord` on
`evt.audit.grpc.<Method>` (EVENTS keeps them; `jetscan audit` reads them). The portal's
forms call `record` with source `ui` before the method they stand for.

grpclib hooks: `RecvRequest` (after the token check, which set the principal) notes the
method and the peer; `RecvMessage` (the request body, in the same task) publishes the record
with the request's target and waits for JetStream's ack. A record that cannot be stored
fails the call with UNAVAILABLE: no mutation goes unrecorded.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.events import RecvMessage, RecvRequest
from nats.js import JetStreamContext, api

from contracts import subjects, wire
from contracts.audit import AuditRecord
from contracts.auth import Role, token_id
from edge.auth import Principal, current, required_role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    method: str
    origin: str


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "audit_pending", default=None
)


def target_of(message: Any) -> str:
    """What a request acts on, for the record: its id, else its tool and target."""
    for field in ("id", "scan_id", "schedule_id", "report_id"):
        value = getattr(message, field, "")
        if isinstance(value, str) and value:
            return value
    parts = [getattr(message, f, "") for f in ("tool", "target")]
    return " ".join(p for p in parts if isinstance(p, str) and p)


class Auditor:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def on_request(self, event: RecvRequest) -> None:
        method = event.method_name.rsplit("/", 1)[-1]
        if required_role(event.method_name) == Role.VIEWER:
            _pending.set(None)
            return
        peer = event.peer.addr() if event.peer is not None else None
        origin = f"{peer[0]}:{peer[1]}" if peer else ""
        _pending.set(_Pending(method, origin))

    async def on_message(self, event: RecvMessage) -> None:
        pending = _pending.get()
        if pending is None:
            return
        _pending.set(None)
        await record(self.js, "grpc", pending.method, current.get(), pending.origin, event.message)


async def record(
    js: JetStreamContext, source: str, method: str, principal: Principal, origin: str, message: Any
) -> None:
    """Store the audit record of `principal` calling `method` with `message` through door
    `source` (grpc, ui); UNAVAILABLE if it cannot be stored."""
    entry = AuditRecord(
        id=uuid.uuid4().hex,
        at=datetime.now(UTC),
        source=source,
        action=method,
        who=principal.name,
        role=principal.role.value,
        origin=origin,
        target=target_of(message),
        token=token_id(principal.key),
    )
    try:
        await js.publish(
            subjects.audit(source, method),
            wire.encode(entry),
            headers={api.Header.MSG_ID: f"audit:{entry.id}"},
            timeout=5,
        )
    except (TimeoutError, nats.errors.Error) as exc:
        log.error("audit record of %s not stored: %r", method, exc)
        raise GRPCError(Status.UNAVAILABLE, "the audit log is unavailable") from exc
