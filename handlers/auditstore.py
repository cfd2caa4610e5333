"""SQL for the audit log: ingest writes each record once, the queries service reads them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from contracts.audit import AuditRecord

_COLUMNS = ("id", "at", "source", "action", "who", "role", "origin", "target", "token", "outcome")
_LIST = ", ".join(_COLUMNS)


def merged(records: list[AuditRecord]) -> list[AuditRecord]:
    """One record per id, its outcome kept: a batch may hold a mutation's pending record and
    its outcome, and one INSERT may not touch a row twice."""
    by_id: dict[str, AuditRecord] = {}
    for record in records:
        known = by_id.get(record.id)
        if known is None or (record.outcome and not known.outcome):
            by_id[record.id] = record
    return list(by_id.values())


async def insert(conn: asyncpg.Connection, records: list[AuditRecord]) -> None:
    """Store `records`; a redelivered one adds no row, and an outcome fills in a pending one."""
    rows = merged(records)
    columns = [[getattr(r, c) for r in rows] for c in _COLUMNS]
    await conn.execute(
        f"INSERT INTO audit ({_LIST})"  # noqa: S608 - column names are constants
        " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[],"
        " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])"
        " ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome"
        " WHERE audit.outcome = '' AND EXCLUDED.outcome <> ''",
        *columns,
    )


async def list_records(
    pool: asyncpg.Pool,
    *,
    since: datetime | None,
    who: str,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[AuditRecord]:
    """Records from `since` on (and after the key `after`), oldest first, at most `limit`."""
    clauses: list[str] = ["TRUE"]
    args: list[object] = []
    if since is not None:
        args.append(since)
        clauses.append(f"at >= ${len(args)}")
    if who:
        args.append(who)
        clauses.append(f"who = ${len(args)}")
    if after is not None:
        args += list(after)
        clauses.append(f"(at, id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await pool.fetch(
        # Constants and numbered parameters only: every value is an argument.
        f"SELECT {_LIST} FROM audit WHERE {' AND '.join(clauses)}"  # noqa: S608
        f" ORDER BY at, id LIMIT ${len(args)}",
        *args,
    )
    return [AuditRecord(**dict(row)) for row in rows]
