"""`evt.audit.<source>.<action>`: one record per mutation, whoever made it and however.

A mutation is recorded before it takes effect (outcome ""), and again with its outcome once
it is answered (same id: the PostgreSQL copy keeps one row per id, with the outcome).
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Who (`who`, the token's name, and `token`, its id), what (`action`, on `target`),
    when (`at`), from where (`origin`: the peer address of an RPC or a browser, `user@host`
    of a CLI command), through which door (`source`: grpc, cli, ui), and how it went
    (`outcome`: "" while pending, then `OK` or the gRPC status name, such as
    `INVALID_ARGUMENT`)."""

    id: str
    at: datetime
    source: str
    action: str
    who: str
    role: str
    origin: str
    target: str = ""
    token: str = ""
    outcome: str = ""


class ListAudit(msgspec.Struct, frozen=True, kw_only=True):
    """`query.audit.list`: records from `since` on, oldest first; only `who`'s when given."""

    since: datetime | None = None
    who: str = ""
    page_size: int = 0
    page_token: str = ""


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    records: list[AuditRecord]
    next_page_token: str = ""
