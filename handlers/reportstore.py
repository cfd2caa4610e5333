"""SQL for report rows: the reports role writes them, the queries service reads them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from contracts import wire
from contracts.reports import (
    FILES,
    GenerateReport,
    ListReports,
    ReportEvent,
    ReportFormat,
    ReportStatus,
    ReportView,
)

_COLUMNS = (
    "id, format, status, scan_ids, domain, target, schedule_id, file, size_bytes, sha256,"
    " snapshot_sha256, error, created_at, ready_at"
)


def _view(row: asyncpg.Record) -> ReportView:
    return ReportView(
        id=row["id"],
        status=ReportStatus(row["status"]),
        format=ReportFormat(row["format"]),
        created_at=row["created_at"],
        scan_ids=tuple(row["scan_ids"]),
        domain=row["domain"],
        target=row["target"],
        schedule_id=row["schedule_id"],
        file=row["file"],
        ready_at=row["ready_at"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        snapshot_sha256=row["snapshot_sha256"],
        error=row["error"],
    )


async def insert_pending(conn: asyncpg.Connection, cmd: GenerateReport) -> ReportStatus:
    """Record the command (a redelivered one changes nothing); return the report's status."""
    await conn.execute(
        "INSERT INTO reports (id, format, status, scan_ids, domain, target, schedule_id, command,"
        " file, requested_by, created_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7::jsonb,"
        " $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        cmd.report_id,
        cmd.format.value,
        list(cmd.scan_ids),
        cmd.domain,
        cmd.target,
        cmd.schedule_id,
        wire.encode(cmd).decode(),
        FILES[cmd.format][0],
        cmd.requested_by,
        cmd.requested_at,
    )
    status = await conn.fetchval("SELECT status FROM reports WHERE id = $1", cmd.report_id)
    return ReportStatus(status)


async def settle(
    conn: asyncpg.Connection, event: ReportEvent, scan_ids: tuple[str, ...], domain: str = ""
) -> None:
    """A pending report becomes ready or failed, once: a replayed outcome changes nothing.
    `scan_ids` are the scans the snapshot read (a domain report names them only now), and
    `domain` theirs when they share one, so listing by domain finds reports on scans too."""
    await conn.execute(
        "UPDATE reports SET status = $2, size_bytes = $3, sha256 = $4, snapshot_sha256 = $5,"
        " error = $6, ready_at = $7, scan_ids = $8,"
        " domain = CASE WHEN domain = '' THEN $9 ELSE domain END"
        " WHERE id = $1 AND status = 'pending'",
        event.report_id,
        event.status.value,
        event.size_bytes,
        event.sha256,
        event.snapshot_sha256,
        event.error,
        event.at,
        list(scan_ids),
        domain,
    )


async def get_report(pool: asyncpg.Pool, report_id: str) -> ReportView | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM reports WHERE id = $1",  # noqa: S608
        report_id,
    )
    return None if row is None else _view(row)


async def list_reports(
    pool: asyncpg.Pool, q: ListReports, limit: int, after: tuple[datetime, str] | None
) -> list[ReportView]:
    """Newest first; `after` is the (created_at, id) of the last report of the page before."""
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    where = ["TRUE"]
    if q.domain:
        where.append(f"domain = {arg(q.domain)}")
    if q.scan_id:
        where.append(f"scan_ids @> ARRAY[{arg(q.scan_id)}::text]")
    if q.format is not None:
        where.append(f"format = {arg(q.format.value)}")
    if after is not None:
        where.append(f"(created_at, id) < ({arg(after[0])}, {arg(after[1])})")
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM reports WHERE {' AND '.join(where)}"  # noqa: S608
        f" ORDER BY created_at DESC, id DESC LIMIT {arg(limit)}",
        *args,
    )
    return [_view(r) for r in rows]
