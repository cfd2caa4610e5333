"""SQL for findings over time, as ingest writes them: what each scan saw and fixed, and triage.

A finding is one fingerprint of one tool on one target (`finding_id`). Every write for a
(tool, target) holds a transaction-scoped advisory lock on it, so the state read to decide a
scan's changes is the state those changes are applied to, with any number of ingest replicas.
The decisions themselves are `handlers.ingest.changes`; this module only reads and applies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from contracts.coverage import Coverage, covers
from contracts.findings import Finding
from contracts.tracking import TriageFinding
from handlers.ingest.changes import Change, Prior, State, on_missed, on_seen

_coverage = msgspec.json.Decoder(Coverage)
_finding = msgspec.json.Decoder(Finding)
_encoder = msgspec.json.Encoder()

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS finding_stage (id text, severity smallint, body text,"
    " state text, decided_at timestamptz, reopened integer) ON COMMIT DELETE ROWS"
)
_STAGE_COLUMNS = ("id", "severity", "body", "state", "decided_at", "reopened")
_NEW_COLUMNS = (
    "id",
    "tool",
    "target",
    "domain",
    "fingerprint",
    "severity",
    "body",
    "first_seen",
    "last_seen",
    "last_scan_id",
    "state",
    "decided_at",
    "reopened",
)
_SEEN_COLUMNS = ("scan_id", "finding_id", "severity", "change")


def finding_id(tool: str, target: str, fingerprint: str) -> str:
    """The id of a finding: the same in migration 0003, which computes it in SQL."""
    return hashlib.sha256(f"{tool}\x1f{target}\x1f{fingerprint}".encode()).hexdigest()[:32]


async def _lock(conn: asyncpg.Connection, tool: str, target: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 14))", f"{tool}\x1f{target}"
    )


async def record_seen(
    conn: asyncpg.Connection,
    *,
    scan_id: str,
    tool: str,
    target: str,
    domain: str,
    at: datetime,
    findings: Sequence[Finding],
) -> int:
    """Store the findings a scan (part) saw and each one's change; return how many.

    Runs inside the caller's transaction, once per part (the caller skips a part it stored
    before). Under the (tool, target) lock the state read is the state written, so findings
    never seen are COPYed in as they are, and only the known ones are updated: a first scan
    costs about what a COPY of its rows does.
    """
    if not findings:
        return 0
    await _lock(conn, tool, target)
    by_fp = {f.fingerprint: f for f in findings}
    ids = [finding_id(tool, target, fp) for fp in by_fp]
    prior = {
        r["id"]: Prior(State(r["state"]), r["decided_at"])
        for r in await conn.fetch(
            "SELECT id, state, decided_at FROM findings WHERE id = ANY($1::text[])", ids
        )
    }
    fresh: list[tuple[object, ...]] = []
    known: list[tuple[object, ...]] = []
    seen_rows: list[tuple[object, ...]] = []
    encode = _encoder.encode
    for fid, (fp, f) in zip(ids, by_fp.items(), strict=True):
        before = prior.get(fid)
        seen = on_seen(before, at)
        body = encode(f).decode()
        rank = f.severity.rank
        seen_rows.append((scan_id, fid, rank, seen.change.value))
        if before is None:
            fresh.append(
                (fid, tool, target, domain, fp, rank, body, at, at, scan_id, "open", at, 0)
            )
            continue
        decided_at = at if seen.decided else before.decided_at
        reopened = int(seen.change is Change.REOPENED and seen.decided)
        known.append((fid, rank, body, seen.state.value, decided_at, reopened))
    if fresh:
        await conn.copy_records_to_table("findings", records=fresh, columns=_NEW_COLUMNS)
    if known:
        await _update_known(conn, known, at, scan_id)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "scan_findings", records=seen_rows, columns=_SEEN_COLUMNS
            )
    except asyncpg.UniqueViolationError:
        # A finding this scan reported in another part too: the first report's change stays.
        await conn.execute(
            "INSERT INTO scan_findings (scan_id, finding_id, severity, change)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[])"
            " ON CONFLICT DO NOTHING",
            *(list(column) for column in zip(*seen_rows, strict=True)),
        )
    return len(seen_rows)


async def _update_known(
    conn: asyncpg.Connection, rows: list[tuple[object, ...]], at: datetime, scan_id: str
) -> None:
    """Apply a scan's sightings to findings that existed: the newest sighting's body wins,
    first/last seen widen, and the state is as `on_seen` decided."""
    await conn.execute(_STAGE)
    await conn.copy_records_to_table("finding_stage", records=rows, columns=_STAGE_COLUMNS)
    await conn.execute(
        "UPDATE findings f SET"
        " severity = CASE WHEN $1 >= f.last_seen THEN s.severity ELSE f.severity END,"
        " body = CASE WHEN $1 >= f.last_seen THEN s.body::jsonb ELSE f.body END,"
        " last_scan_id = CASE WHEN $1 >= f.last_seen THEN $2 ELSE f.last_scan_id END,"
        " first_seen = LEAST(f.first_seen, $1), last_seen = GREATEST(f.last_seen, $1),"
        " fixed_at = CASE WHEN s.state = 'open' THEN NULL ELSE f.fixed_at END,"
        " state = s.state, decided_at = s.decided_at, reopened = f.reopened + s.reopened"
        " FROM finding_stage s WHERE f.id = s.id",
        at,
        scan_id,
    )
    # Emptied now rather than at commit: a result in parts stages again in this transaction.
    await conn.execute("TRUNCATE finding_stage")


async def apply_fixes(conn: asyncpg.Connection, scan_id: str) -> int | None:
    """Fix what a complete scan covered and did not see, once; return how many (None when the
    scan is not (yet) one that may fix anything). Call with the scan's row locked."""
    scan = await conn.fetchrow(
        "SELECT tool, target, status, result_at, partial, coverage::text AS coverage,"
        " observed_at, fixes_applied, result_parts,"
        " (SELECT count(*) FROM scan_result_parts p WHERE p.scan_id = s.id) AS stored_parts"
        " FROM scans s WHERE id = $1",
        scan_id,
    )
    if (
        scan is None
        or scan["fixes_applied"]
        or scan["status"] != "succeeded"
        or scan["result_at"] is None
        or scan["partial"]
        or scan["coverage"] is None
        or scan["observed_at"] is None
        or scan["stored_parts"] < scan["result_parts"]
    ):
        return None
    coverage = _coverage.decode(scan["coverage"])
    at: datetime = scan["observed_at"]
    await _lock(conn, scan["tool"], scan["target"])
    candidates = await conn.fetch(
        "SELECT f.id, f.body::text AS body, f.decided_at FROM findings f"
        " WHERE f.tool = $1 AND f.target = $2 AND f.state = 'open' AND f.decided_at < $3"
        " AND NOT EXISTS (SELECT 1 FROM scan_findings sf"
        "   WHERE sf.scan_id = $4 AND sf.finding_id = f.id)",
        scan["tool"],
        scan["target"],
        at,
        scan_id,
    )
    fixed = [
        r["id"]
        for r in candidates
        if on_missed(Prior(State.OPEN, r["decided_at"]), at)
        and covers(coverage, _finding.decode(r["body"]))
    ]
    if fixed:
        await conn.execute(
            "UPDATE findings SET state = 'fixed', fixed_at = $2, decided_at = $2"
            " WHERE id = ANY($1::text[])",
            fixed,
            at,
        )
        await conn.execute(
            "INSERT INTO scan_findings (scan_id, finding_id, severity, change)"
            " SELECT $1, id, severity, 'fixed' FROM findings WHERE id = ANY($2::text[])"
            " ON CONFLICT DO NOTHING",
            scan_id,
            fixed,
        )
    await conn.execute("UPDATE scans SET fixes_applied = true WHERE id = $1", scan_id)
    return len(fixed)


class UnknownFinding(Exception):
    """A triage command for a finding that does not exist."""


async def apply_triage(conn: asyncpg.Connection, cmd: TriageFinding) -> bool:
    """Record a triage decision and make it the finding's; False if it was applied before."""
    async with conn.transaction():
        exists = await conn.fetchval(
            "SELECT 1 FROM findings WHERE id = $1 FOR UPDATE", cmd.finding_id
        )
        if exists is None:
            raise UnknownFinding(cmd.finding_id)
        override = cmd.severity_override.rank if cmd.severity_override else None
        inserted = await conn.fetchval(
            "INSERT INTO finding_triage (command_id, finding_id, triage, reason, until,"
            " severity_override, triaged_by, triaged_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (command_id) DO NOTHING RETURNING seq",
            cmd.command_id,
            cmd.finding_id,
            cmd.triage.value,
            cmd.reason,
            cmd.until,
            override,
            cmd.requested_by,
            cmd.requested_at,
        )
        if inserted is None:
            return False
        # Commands are applied in stream order, so the latest is the finding's triage.
        await conn.execute(
            "UPDATE findings SET triage = $2, triage_reason = $3, triage_until = $4,"
            " severity_override = $5, triaged_by = $6, triaged_at = $7 WHERE id = $1",
            cmd.finding_id,
            cmd.triage.value,
            cmd.reason,
            cmd.until,
            override,
            cmd.requested_by,
            cmd.requested_at,
        )
        return True


EXPIRED_BY = "jetscan (accepted risk expired)"


async def expire_triage(conn: asyncpg.Connection, now: datetime) -> int:
    """Accepted risks past their `until` go back to no triage, each change kept in history."""
    async with conn.transaction():
        rows = await conn.fetch(
            "UPDATE findings SET triage = 'none', triage_reason = '', triage_until = NULL,"
            " severity_override = NULL, triaged_by = $2, triaged_at = $1"
            " WHERE triage = 'accepted_risk' AND triage_until <= $1 RETURNING id",
            now,
            EXPIRED_BY,
        )
        if rows:
            await conn.execute(
                "INSERT INTO finding_triage (command_id, finding_id, triage, triaged_by,"
                " triaged_at) SELECT 'expired:' || i || ':' || $2, i, 'none', $3, $1"
                " FROM unnest($4::text[]) AS i ON CONFLICT DO NOTHING",
                now,
                now.isoformat(),
                EXPIRED_BY,
                [r["id"] for r in rows],
            )
        return len(rows)
