"""Every SQL statement jetscan runs (the pool and migrations are in `handlers.database`)."""

from __future__ import annotations

import hashlib
from datetime import datetime

import asyncpg
import msgspec

from contracts.findings import Finding
from contracts.output import OutputLine, Stream
from contracts.results import ScanResult
from contracts.scans import (
    FindingCounts,
    ScanEvent,
    ScanStatus,
    ScanView,
    StartScan,
    StoredFinding,
    advance,
)

# --- scans -------------------------------------------------------------------------

_SCAN_COLUMNS = (
    "s.id, s.target, s.domain, s.tool, s.config::text AS config, s.status, s.exit_code,"
    " s.error, s.deadline_seconds, s.requested_by, s.schedule_id, s.created_at, s.started_at,"
    " s.finished_at, s.trigger, c.info, c.low, c.medium, c.high, c.critical"
)
_FROM_SCANS = (
    " FROM scans s LEFT JOIN LATERAL (SELECT"
    " count(*) FILTER (WHERE severity = 0) AS info,"
    " count(*) FILTER (WHERE severity = 1) AS low,"
    " count(*) FILTER (WHERE severity = 2) AS medium,"
    " count(*) FILTER (WHERE severity = 3) AS high,"
    " count(*) FILTER (WHERE severity = 4) AS critical"
    " FROM scan_findings f WHERE f.scan_id = s.id) c ON TRUE"
)


def _scan_view(row: asyncpg.Record) -> ScanView:
    return ScanView(
        id=row["id"],
        target=row["target"],
        domain=row["domain"],
        tool=row["tool"],
        config=msgspec.json.decode(row["config"]),
        status=ScanStatus(row["status"]),
        exit_code=row["exit_code"],
        error=row["error"],
        deadline_seconds=row["deadline_seconds"],
        requested_by=row["requested_by"],
        schedule_id=row["schedule_id"],
        trigger=row["trigger"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        finding_counts=FindingCounts(
            info=row["info"],
            low=row["low"],
            medium=row["medium"],
            high=row["high"],
            critical=row["critical"],
        ),
    )


async def get_scan(pool: asyncpg.Pool, scan_id: str) -> ScanView | None:
    row = await pool.fetchrow(
        f"SELECT {_SCAN_COLUMNS}{_FROM_SCANS} WHERE s.id = $1",
        scan_id,
    )
    return _scan_view(row) if row else None


async def list_scans(
    pool: asyncpg.Pool,
    *,
    domain: str,
    tool: str,
    status: str,
    limit: int,
    after: tuple[datetime, str] | None,
    schedule_id: str = "",
) -> list[ScanView]:
    """Newest first; `after` is the (created_at, id) of the last row already returned."""
    where: list[str] = ["TRUE"]
    args: list[object] = []
    for column, value in (
        ("domain", domain),
        ("tool", tool),
        ("status", status),
        ("schedule_id", schedule_id),
    ):
        if value:
            args.append(value)
            where.append(f"s.{column} = ${len(args)}")
    if after:
        args.extend(after)
        where.append(f"(s.created_at, s.id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await pool.fetch(
        f"SELECT {_SCAN_COLUMNS}{_FROM_SCANS}"
        f" WHERE {' AND '.join(where)} ORDER BY s.created_at DESC, s.id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_scan_view(r) for r in rows]


# --- ingest --------------------------------------------------------------------------


async def insert_scans(conn: asyncpg.Connection, cmds: list[StartScan]) -> None:
    """Record newly started scans as queued; a replayed command changes nothing."""
    await conn.execute(
        "INSERT INTO scans (id, target, domain, tool, config, status, deadline_seconds,"
        " requested_by, request_id, schedule_id, created_at, trigger)"
        " SELECT i, t, d, tl, c::jsonb, 'queued', dl, rb, rq, sc, ca, tr FROM unnest($1::text[],"
        " $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[],"
        " $9::text[], $10::timestamptz[], $11::text[]) AS u(i, t, d, tl, c, dl, rb, rq, sc, ca, tr)"
        " ON CONFLICT (id) DO NOTHING",
        [c.scan_id for c in cmds],
        [c.target for c in cmds],
        [c.domain for c in cmds],
        [c.tool for c in cmds],
        [msgspec.json.encode(c.config).decode() for c in cmds],
        [c.deadline_seconds for c in cmds],
        [c.requested_by for c in cmds],
        [c.request_id for c in cmds],
        [c.schedule_id for c in cmds],
        [c.requested_at for c in cmds],
        [c.trigger for c in cmds],
    )


class UnknownScan(Exception):
    """An event or result for a scan whose start command has not been projected yet."""

    retry_after = 0.5

    def __init__(self, scan_id: str) -> None:
        super().__init__(scan_id)
        self.scan_id = scan_id


class ResultPending(Exception):
    """A scan succeeded but its result has not been stored yet: retry shortly."""

    retry_after = 0.5


async def apply_event(
    conn: asyncpg.Connection,
    event: ScanEvent,
    *,
    await_result: bool = False,
    await_parts: bool = False,
) -> ScanStatus | None:
    """Move the scan to the event's status if that is forward; return the new status.

    A scan shown as succeeded must have its findings readable, so a success whose result
    is not stored yet raises ResultPending: with `await_result` whether or not any of the
    result has come, with `await_parts` only while a result in parts is still arriving
    (storing a large one takes longer than a job without a result is worth waiting for).
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, result_at, result_part FROM scans WHERE id = $1 FOR UPDATE",
            event.scan_id,
        )
        if row is None:
            raise UnknownScan(event.scan_id)
        waits = await_result or (await_parts and row["result_part"] > 0)
        if waits and event.status is ScanStatus.SUCCEEDED and row["result_at"] is None:
            raise ResultPending(event.scan_id)
        new = advance(ScanStatus(row["status"]), event.status)
        if new is None:
            if event.status is ScanStatus.RUNNING:
                # A running event that lost the race with the end still dates the start.
                await conn.execute(
                    "UPDATE scans SET started_at = coalesce(started_at, $2) WHERE id = $1",
                    event.scan_id,
                    event.at,
                )
            return None
        await conn.execute(
            "UPDATE scans SET status = $2, updated_at = now(),"
            " started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, $3)"
            "   ELSE started_at END,"
            " finished_at = CASE WHEN $4 THEN $3 ELSE finished_at END,"
            # The scanner's own code (from its result) wins over the job's.
            " exit_code = coalesce(exit_code, $5),"
            " error = CASE WHEN $6 <> '' THEN $6 ELSE error END"
            " WHERE id = $1",
            event.scan_id,
            new.value,
            event.at,
            new.terminal,
            event.exit_code,
            event.reason,
        )
        return new


async def touch_scan(conn: asyncpg.Connection, scan_id: str) -> None:
    await conn.execute("UPDATE scans SET updated_at = now() WHERE id = $1", scan_id)


def finding_id(tool: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{tool}\x1f{fingerprint}".encode()).hexdigest()[:32]


async def store_result(conn: asyncpg.Connection, result: ScanResult) -> int:
    """Upsert a result's findings and link them to the scan; return how many are linked.

    A finding already known for the tool keeps its row and `first_seen`; `last_seen`
    only moves forward, so replaying an old result changes nothing.
    """
    async with conn.transaction():
        exists = await conn.fetchval(
            # Parts arrive in order; the last one completes the result.
            "UPDATE scans SET artifact = $2, partial = $3, exit_code = $4,"
            " data_artifact = $5, result_part = GREATEST(result_part, $7),"
            " result_at = CASE WHEN $6 THEN now() ELSE result_at END, updated_at = now()"
            " WHERE id = $1 RETURNING id",
            result.scan_id,
            result.artifact,
            result.partial,
            result.exit_code,
            result.data_artifact,
            result.part >= result.parts,
            result.part,
        )
        if exists is None:
            raise UnknownScan(result.scan_id)
        if not result.findings:
            return 0
        by_fp = {f.fingerprint: f for f in result.findings}
        ids = [finding_id(result.tool, fp) for fp in by_fp]
        await conn.execute(
            "INSERT INTO findings (id, tool, fingerprint, severity, body, first_seen, last_seen,"
            " last_scan_id)"
            " SELECT i, $1, fp, sev, body::jsonb, $5, $5, $6"
            " FROM unnest($2::text[], $3::text[], $4::smallint[], $7::text[])"
            "   AS u(i, fp, sev, body)"
            " ON CONFLICT (tool, fingerprint) DO UPDATE SET"
            " severity = CASE WHEN EXCLUDED.last_seen >= findings.last_seen"
            "   THEN EXCLUDED.severity ELSE findings.severity END,"
            " body = CASE WHEN EXCLUDED.last_seen >= findings.last_seen"
            "   THEN EXCLUDED.body ELSE findings.body END,"
            " last_scan_id = CASE WHEN EXCLUDED.last_seen >= findings.last_seen"
            "   THEN EXCLUDED.last_scan_id ELSE findings.last_scan_id END,"
            " first_seen = LEAST(findings.first_seen, EXCLUDED.first_seen),"
            " last_seen = GREATEST(findings.last_seen, EXCLUDED.last_seen)",
            result.tool,
            ids,
            list(by_fp),
            [f.severity.rank for f in by_fp.values()],
            result.finished_at,
            result.scan_id,
            [msgspec.json.encode(f).decode() for f in by_fp.values()],
        )
        await conn.execute(
            "INSERT INTO scan_findings (scan_id, finding_id, severity)"
            " SELECT $1, i, sev FROM unnest($2::text[], $3::smallint[]) AS u(i, sev)"
            " ON CONFLICT DO NOTHING",
            result.scan_id,
            ids,
            [f.severity.rank for f in by_fp.values()],
        )
        return len(ids)


async def insert_output(conn: asyncpg.Connection, lines: list[OutputLine]) -> None:
    """Keep console lines beyond the OUTPUT stream's retention; duplicates are ignored."""
    await conn.execute(
        "INSERT INTO scan_output (scan_id, seq, time, stream, text)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[],"
        " $5::text[]) ON CONFLICT DO NOTHING",
        [ln.scan_id for ln in lines],
        [ln.seq for ln in lines],
        [ln.time for ln in lines],
        [ln.stream.value for ln in lines],
        [ln.text for ln in lines],
    )


async def list_output(
    pool: asyncpg.Pool, scan_id: str, after_seq: int, limit: int
) -> list[OutputLine]:
    """A scan's stored console lines with `seq > after_seq`, in order, at most `limit`."""
    rows = await pool.fetch(
        "SELECT seq, time, stream, text FROM scan_output"
        " WHERE scan_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        scan_id,
        after_seq,
        limit,
    )
    return [
        OutputLine(
            scan_id=scan_id,
            seq=r["seq"],
            time=r["time"],
            stream=Stream(r["stream"]),
            text=r["text"],
        )
        for r in rows
    ]


async def active_scans(pool: asyncpg.Pool, quiet_for: float) -> list[tuple[str, str, datetime]]:
    """Launching or running scans not updated for `quiet_for` seconds: (id, status, since)."""
    rows = await pool.fetch(
        "SELECT id, status, updated_at FROM scans WHERE status IN ('launching', 'running')"
        " AND updated_at < now() - make_interval(secs => $1)",
        quiet_for,
    )
    return [(r["id"], r["status"], r["updated_at"]) for r in rows]


# --- findings ------------------------------------------------------------------------


async def list_findings(
    pool: asyncpg.Pool, scan_id: str, min_rank: int, limit: int, after: tuple[int, str] | None
) -> list[StoredFinding]:
    """A scan's findings, most severe first; `after` is the last (rank, id) returned."""
    args: list[object] = [scan_id, min_rank, limit]
    cursor = ""
    if after:
        args.extend(after)
        cursor = " AND (sf.severity, sf.finding_id) < ($4, $5)"
    rows = await pool.fetch(
        "SELECT f.id, f.body::text AS body, f.first_seen, f.last_seen, sf.severity"  # noqa: S608
        " FROM scan_findings sf JOIN findings f ON f.id = sf.finding_id"
        f" WHERE sf.scan_id = $1 AND sf.severity >= $2{cursor}"
        " ORDER BY sf.severity DESC, sf.finding_id DESC LIMIT $3",
        *args,
    )
    return [
        StoredFinding(
            id=r["id"],
            scan_id=scan_id,
            finding=msgspec.json.decode(r["body"], type=Finding),
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
        )
        for r in rows
    ]


async def scan_exists(pool: asyncpg.Pool, scan_id: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM scans WHERE id = $1)", scan_id))
