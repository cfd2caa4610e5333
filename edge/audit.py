"""Every mutation that reaches the edge is recorded before it takes effect: an `AuditRecord` on
`evt.audit.<source>.<action>` (EVENTS keeps them, ingest copies them into PostgreSQL, `jetscan
audit` reads them), and again with its outcome once it is answered.

gRPC: grpclib hooks. `RecvRequest` (after the token check, which set the principal) notes the
method and the peer; `RecvMessage` (the request body, in the same task) publishes the record
with the request's target and waits for JetStream's ack; `SendTrailingMetadata` publishes the
outcome (the status) in a task of its own, so the answer does not wait for it. A record that
cannot be stored fails the call with UNAVAILABLE: no mutation goes unrecorded. Other doors
(the web UI) call `AuditLog.begin` and `finish` around the same command path, with the
browser's address as the origin.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.events import RecvMessage, RecvRequest, SendTrailingMetadata
from nats.js import JetStreamContext, api

from contracts import subjects, wire
from contracts.audit import AuditRecord
from contracts.auth import Role, token_id
from edge.auth import Principal, current, required_role

log = logging.getLogger(__name__)

OK = "OK"


class AuditUnavailable(Exception):
    """The record could not be stored, so the mutation must not happen."""


@dataclass(frozen=True)
class _Pending:
    method: str
    origin: str


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "audit_pending", default=None
)
_recorded: contextvars.ContextVar[AuditRecord | None] = contextvars.ContextVar(
    "audit_recorded", default=None
)


def target_of(message: Any) -> str:
    """What a request acts on, for the record: its id, else its tool and target."""
    for field in ("id", "scan_id", "schedule_id", "report_id", "finding_id"):
        value = getattr(message, field, "")
        if isinstance(value, str) and value:
            return value
    parts = [getattr(message, f, "") for f in ("tool", "target")]
    return " ".join(p for p in parts if isinstance(p, str) and p)


def origin_of(client: Any) -> str:
    """`host:port` of a peer given as a (host, port) pair or Starlette's `request.client`."""
    if client is None:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class AuditLog:
    """Publishes audit records for one door of the edge (`source`: grpc, ui)."""

    def __init__(self, js: JetStreamContext, source: str) -> None:
        self.js = js
        self.source = source

    async def begin(
        self, principal: Principal, action: str, target: str, origin: str
    ) -> AuditRecord:
        """Record `action` before it takes effect; raise AuditUnavailable if that fails."""
        record = AuditRecord(
            id=uuid.uuid4().hex,
            at=datetime.now(UTC),
            source=self.source,
            action=action,
            who=principal.name,
            role=principal.role.value,
            origin=origin,
            target=target,
            token=token_id(principal.key),
        )
        try:
            await self._publish(record, f"audit:{record.id}")
        except (TimeoutError, nats.errors.Error) as exc:
            log.error("audit record of %s not stored: %r", action, exc)
            raise AuditUnavailable(action) from exc
        return record

    async def finish(self, record: AuditRecord, outcome: str) -> None:
        """Record how `record`'s mutation went (`OK`, or a status name such as NOT_FOUND).

        Best effort: the mutation is already recorded, and its answer must not wait on this.
        """
        done = msgspec.structs.replace(record, outcome=outcome or OK)
        try:
            await self._publish(done, f"audit:{record.id}:outcome")
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("outcome %s of audit record %s not stored: %r", outcome, record.id, exc)

    async def _publish(self, record: AuditRecord, msg_id: str) -> None:
        await self.js.publish(
            subjects.audit(record.source, record.action),
            wire.encode(record),
            headers={api.Header.MSG_ID: msg_id},
            timeout=5,
        )


class Auditor:
    """The grpclib hooks of the module docstring."""

    def __init__(self, js: JetStreamContext) -> None:
        self.log = AuditLog(js, "grpc")
        # Outcomes are published beside the answer, not before it: the call does not wait.
        self._finishing: set[asyncio.Task[None]] = set()

    async def on_request(self, event: RecvRequest) -> None:
        _recorded.set(None)
        if required_role(event.method_name) == Role.VIEWER:
            _pending.set(None)
            return
        method = event.method_name.rsplit("/", 1)[-1]
        origin = origin_of(event.peer.addr() if event.peer is not None else None)
        _pending.set(_Pending(method, origin))

    async def on_message(self, event: RecvMessage) -> None:
        pending = _pending.get()
        if pending is None:
            return
        _pending.set(None)
        try:
            record = await self.log.begin(
                current.get(), pending.method, target_of(event.message), pending.origin
            )
        except AuditUnavailable as exc:
            raise GRPCError(Status.UNAVAILABLE, "the audit log is unavailable") from exc
        _recorded.set(record)

    async def on_trailers(self, event: SendTrailingMetadata) -> None:
        record = _recorded.get()
        pending = _pending.get()
        _recorded.set(None)
        _pending.set(None)
        if record is None and pending is not None:
            # Refused before its request was read (a malformed body): an attempt, recorded.
            principal = current.get(None)
            if principal is None:
                return
            try:
                record = await self.log.begin(principal, pending.method, "", pending.origin)
            except AuditUnavailable:
                return
        if record is not None:
            task = asyncio.create_task(self.log.finish(record, event.status.name))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)
