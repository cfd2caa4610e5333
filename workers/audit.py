"""The CLI side of the audit log: records of the operator's own mutations, and reading them.

Records travel on `evt.audit.<source>.<action>` (EVENTS keeps them 30 days) and ingest copies
them into PostgreSQL. `jetscan audit` reads the table through the queries service
(`query.audit.list`, page by page), and the stream only when no queries service answers.
"""

from __future__ import annotations

import getpass
import socket
import sys
import uuid
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts import subjects, wire
from contracts.audit import AuditPage, AuditRecord, ListAudit
from workers.tables import table

_decode = msgspec.json.Decoder(AuditRecord)
_page = msgspec.json.Decoder(AuditPage)
_QUIET = 0.5  # seconds without a record: the consumer has caught up
PAGE_SIZE = 1000
HEADERS = ("WHEN", "WHO", "ROLE", "SOURCE", "ACTION", "TARGET", "OUTCOME", "FROM")


class AuditQueryError(Exception):
    """The queries service refused the request (its code and description)."""


def origin() -> str:
    """Where a CLI command came from: the operator's user and host."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "?"
    return f"{user}@{socket.gethostname()}"


async def record(js: JetStreamContext, action: str, target: str = "") -> None:
    """Record one CLI mutation, done (as the admin's NATS user, the CLI's only identity)."""
    entry = AuditRecord(
        id=uuid.uuid4().hex,
        at=datetime.now(UTC),
        source="cli",
        action=action,
        who="cli-admin",
        role="admin",
        origin=origin(),
        target=target,
        outcome="OK",
    )
    await js.publish(
        subjects.audit("cli", action),
        wire.encode(entry),
        headers={api.Header.MSG_ID: f"audit:{entry.id}"},
        timeout=5,
    )


async def fetch(nc: Client, since: datetime, who: str = "") -> list[AuditRecord]:
    """Every record from `since` on, oldest first; only `who`'s when given. From PostgreSQL
    through the queries service, else (none answering) from the stream, with a note."""
    try:
        return await query(nc, since, who)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
        sys.stderr.write("jetscan: the queries service does not answer; read from EVENTS\n")
    return await read(nc.jetstream(), since, who)


async def query(nc: Client, since: datetime, who: str = "") -> list[AuditRecord]:
    found: list[AuditRecord] = []
    token = ""
    while True:
        ask = ListAudit(since=since, who=who, page_size=PAGE_SIZE, page_token=token)
        reply = await nc.request(subjects.query("audit", "list"), wire.encode(ask), timeout=10)
        headers = reply.headers or {}
        if "Nats-Service-Error-Code" in headers:
            code = headers["Nats-Service-Error-Code"]
            raise AuditQueryError(f"{code} {headers.get('Nats-Service-Error', '')}")
        page = _page.decode(reply.data)
        found += page.records
        token = page.next_page_token
        if not token:
            return found


async def read(js: JetStreamContext, since: datetime, who: str = "") -> list[AuditRecord]:
    """The stream's records from `since` on, oldest first, one per mutation (its outcome
    when it has one); only `who`'s when given."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since.astimezone(UTC),
    )
    sub = await js.subscribe(subjects.AUDIT, ordered_consumer=True, config=config)
    found: dict[str, AuditRecord] = {}
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=_QUIET)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            try:
                entry = _decode.decode(msg.data)
            except wire.UNDECODABLE:
                continue
            if (not who or entry.who == who) and (entry.outcome or entry.id not in found):
                found[entry.id] = entry
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return sorted(found.values(), key=lambda r: (r.at, r.id))


def render(found: list[AuditRecord], as_json: bool) -> str:
    if as_json:
        return "".join(msgspec.json.encode(r).decode() + "\n" for r in found)
    rows = [
        (
            r.at.strftime("%Y-%m-%d %H:%M:%SZ"),
            r.who,
            r.role,
            r.source,
            r.action,
            r.target,
            r.outcome or "-",
            r.origin,
        )
        for r in found
    ]
    return table(HEADERS, rows)
