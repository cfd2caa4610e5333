"""The scans' SQL: their rows, events, results and liveness (the pool and migrations are in
`handlers.database`; findings, reports, audit and console lines have their own store modules)."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from contracts.results import ScanResult
from contracts.scans import (
    ChangeCounts,
    FindingCounts,
    ScanEvent,
    ScanStatus,
    ScanView,
    StartScan,
    advance,
)
from handlers import findings

# --- scans -------------------------------------------------------------------------

_SCAN_COLUMNS = (
    "s.id, s.target, s.domain, s.tool, s.config::text AS config, s.status, s.exit_code,"
    " s.error, s.deadline_seconds, s.requested_by, s.schedule_id, s.created_at, s.started_at,"
    " s.finished_at, s.result_error, s.trigger, s.attempts, c.info, c.low, c.medium, c.high,"
    " c.critical, c.n_new, c.n_unchanged, c.n_reopened, c.n_fixed"
)
# Counts leave false positives out, and count a finding at its overridden severity.
_FROM_SCANS = (
    " FROM scans s LEFT JOIN LATERAL (SELECT"
    " count(*) FILTER (WHERE sf.change <> 'fixed' AND sev = 0) AS info,"
    " count(*) FILTER (WHERE sf.change <> 'fixed' AND sev = 1) AS low,"
    " count(*) FILTER (WHERE sf.change <> 'fixed' AND sev = 2) AS medium,"
    " count(*) FILTER (WHERE sf.change <> 'fixed' AND sev = 3) AS high,"
    " count(*) FILTER (WHERE sf.change <> 'fixed' AND sev = 4) AS critical,"
    " count(*) FILTER (WHERE sf.change = 'new') AS n_new,"
    " count(*) FILTER (WHERE sf.change = 'unchanged') AS n_unchanged,"
    " count(*) FILTER (WHERE sf.change = 'reopened') AS n_reopened,"
    " count(*) FILTER (WHERE sf.change = 'fixed') AS n_fixed"
    " FROM scan_findings sf JOIN findings f ON f.key = sf.finding_key,"
    " LATERAL (SELECT coalesce(f.severity_override, sf.severity) AS sev) e"
    " WHERE sf.scan_key = s.key AND f.triage <> 'false_positive') c ON TRUE"
)


def _error(row: asyncpg.Record) -> str:
    """A failed scan's reason, with its result's own account of what went wrong."""
    error, detail = row["error"], row["result_error"]
    if row["status"] != ScanStatus.FAILED.value or not detail or detail in error:
        return str(error)
    return f"{error}: {detail}" if error else str(detail)


def _scan_view(row: asyncpg.Record) -> ScanView:
    return ScanView(
        id=row["id"],
        target=row["target"],
        domain=row["domain"],
        tool=row["tool"],
        config=msgspec.json.decode(row["config"]),
        status=ScanStatus(row["status"]),
        exit_code=row["exit_code"],
        error=_error(row),
        deadline_seconds=row["deadline_seconds"],
        requested_by=row["requested_by"],
        schedule_id=row["schedule_id"],
        trigger=row["trigger"],
        attempts=row["attempts"],
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
        change_counts=ChangeCounts(
            new=row["n_new"],
            unchanged=row["n_unchanged"],
            reopened=row["n_reopened"],
            fixed=row["n_fixed"],
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
    target: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ScanView]:
    """Newest first; `after` is the (created_at, id) of the last row already returned;
    `since <= created_at < until` when given."""
    where: list[str] = ["TRUE"]
    args: list[object] = []
    for column, value in (
        ("domain", domain),
        ("tool", tool),
        ("status", status),
        ("schedule_id", schedule_id),
        ("target", target),
    ):
        if value:
            args.append(value)
            where.append(f"s.{column} = ${len(args)}")
    if since is not None:
        args.append(since)
        where.append(f"s.created_at >= ${len(args)}")
    if until is not None:
        args.append(until)
        where.append(f"s.created_at < ${len(args)}")
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
            "SELECT status, result_at, result_part, attempts FROM scans WHERE id = $1 FOR UPDATE",
            event.scan_id,
        )
        if row is None:
            raise UnknownScan(event.scan_id)
        if event.status is ScanStatus.QUEUED and event.attempt > 1:
            return await _requeue(conn, event, ScanStatus(row["status"]), row["attempts"])
        if event.status in (ScanStatus.LAUNCHING, ScanStatus.RUNNING):
            # A new attempt restarts liveness' clock even when its step is not "forward".
            await conn.execute(
                "UPDATE scans SET attempts = $2, updated_at = now() WHERE id = $1"
                " AND attempts < $2",
                event.scan_id,
                event.attempt,
            )
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
        if new is ScanStatus.SUCCEEDED:
            await findings.apply_fixes(conn, event.scan_id)
        return new


async def _requeue(
    conn: asyncpg.Connection, event: ScanEvent, status: ScanStatus, attempts: int
) -> ScanStatus | None:
    """A scan whose job jetscan lost goes back to QUEUED for attempt `event.attempt` (once:
    a later or repeated event of an earlier attempt changes nothing)."""
    if status.terminal or event.attempt <= attempts or status is ScanStatus.QUEUED:
        return None
    await conn.execute(
        "UPDATE scans SET status = 'queued', updated_at = now() WHERE id = $1", event.scan_id
    )
    return ScanStatus.QUEUED


async def touch_scan(conn: asyncpg.Connection, scan_id: str) -> None:
    await conn.execute("UPDATE scans SET updated_at = now() WHERE id = $1", scan_id)


async def store_result(conn: asyncpg.Connection, result: ScanResult) -> int:
    """Record a result (part): the findings it saw and their changes (`handlers.findings`);
    with its last part of a complete scan, what the scan fixed. Return how many it saw.

    A replayed part changes nothing: `first_seen`/`last_seen` only widen, and the state was
    decided by this scan already (see `handlers.ingest.changes`).
    """
    async with conn.transaction():
        latest = await conn.fetchval(
            "SELECT result_attempt FROM scans WHERE id = $1 FOR UPDATE", result.scan_id
        )
        if latest is None:
            raise UnknownScan(result.scan_id)
        if result.attempt < latest:
            # A late part of an attempt jetscan lost: the retry's result is the scan's.
            return 0
        scan = await conn.fetchrow(
            # Parts arrive in order; the last one completes the result. A later attempt's
            # first part starts the result anew.
            "UPDATE scans SET artifact = $2, partial = $3, exit_code = $4,"
            " data_artifact = $5,"
            " result_part = CASE WHEN $13 > result_attempt THEN $7"
            "   ELSE GREATEST(result_part, $7) END,"
            " result_at = CASE WHEN $6 THEN now() WHEN $13 > result_attempt THEN NULL"
            "   ELSE result_at END, updated_at = now(),"
            " observed_at = $8, result_error = $9, result_parts = $11,"
            " coverage = CASE WHEN $10::text IS NULL THEN coverage ELSE $10::jsonb END,"
            " scanner_version = CASE WHEN $12 = '' THEN scanner_version ELSE $12 END,"
            " result_attempt = $13"
            " WHERE id = $1 RETURNING target, domain, key",
            result.scan_id,
            result.artifact,
            result.partial,
            result.exit_code,
            result.data_artifact,
            result.part >= result.parts,
            result.part,
            result.finished_at,
            result.error,
            None if result.coverage is None else msgspec.json.encode(result.coverage).decode(),
            result.parts,
            result.scanner_version,
            result.attempt,
        )
        if scan is None:  # the row was locked above: only a deleted scan gets here
            raise UnknownScan(result.scan_id)
        fresh = await conn.fetchval(
            "INSERT INTO scan_result_parts (scan_id, attempt, part) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING part",
            result.scan_id,
            result.attempt,
            result.part,
        )
        if fresh is None:
            # A redelivered or replayed part: everything it says is recorded already.
            await findings.apply_fixes(conn, result.scan_id)
            return len(result.findings)
        n = await findings.record_seen(
            conn,
            scan_id=result.scan_id,
            scan_key=scan["key"],
            tool=result.tool,
            target=scan["target"],
            domain=scan["domain"],
            at=result.finished_at,
            findings=result.findings,
        )
        # The scan may have been shown succeeded before its result came (see apply_event).
        await findings.apply_fixes(conn, result.scan_id)
        return n


async def active_scans(
    pool: asyncpg.Pool, quiet_for: float
) -> list[tuple[str, str, datetime, int]]:
    """Launching or running scans not updated for `quiet_for` seconds:
    (id, status, since, attempts)."""
    rows = await pool.fetch(
        "SELECT id, status, updated_at, attempts FROM scans"
        " WHERE status IN ('launching', 'running')"
        " AND updated_at < now() - make_interval(secs => $1)",
        quiet_for,
    )
    return [(r["id"], r["status"], r["updated_at"], r["attempts"]) for r in rows]


# --- findings ------------------------------------------------------------------------


async def scan_exists(pool: asyncpg.Pool, scan_id: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM scans WHERE id = $1)", scan_id))


async def scan_identity(conn: asyncpg.Connection, scan_id: str) -> tuple[str, str] | None:
    """(tool, target) of the scan as its start command named them; None if unknown."""
    row = await conn.fetchrow("SELECT tool, target FROM scans WHERE id = $1", scan_id)
    return None if row is None else (row["tool"], row["target"])
