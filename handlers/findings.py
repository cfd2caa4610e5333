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

_NEW_COLUMNS = (
    "id",
    "key",
    "tool",
    "target",
    "domain",
    "severity",
    "body",
    "digest",
    "first_seen",
    "last_seen",
    "last_scan_id",
    "decided_at",
)  # state 'open' and reopened 0 by default
_SEEN_COLUMNS = ("scan_key", "finding_key", "severity", "change")


def finding_id(tool: str, target: str, fingerprint: str) -> str:
    """The id of a finding: the same in migration 0003, which computes it in SQL."""
    return hashlib.sha256(f"{tool}\x1f{target}\x1f{fingerprint}".encode()).hexdigest()[:32]


async def lock(conn: asyncpg.Connection, tool: str, target: str) -> None:
    """Hold the (tool, target) for the rest of the transaction (ingest and re-derivation)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 14))", f"{tool}\x1f{target}"
    )


# Moves every known finding a scan saw forward as `changes.on_seen` decides (a sighting
# newer than the decision opens it again, counting a reopen if it was fixed; an older one
# only widens first/last seen), and returns each one's state from before (kept in prev_*,
# as SET sees the old row), from which `on_seen` names the change, and whether this is its
# newest sighting (last_seen = the scan's time) with the digest of the body stored.
_SEEN_KNOWN = (
    "UPDATE findings f SET prev_state = f.state, prev_decided_at = f.decided_at,"
    " first_seen = LEAST(f.first_seen, $2), last_seen = GREATEST(f.last_seen, $2),"
    " last_scan_id = CASE WHEN $2 >= f.last_seen THEN $3 ELSE f.last_scan_id END,"
    " state = CASE WHEN $2 > f.decided_at THEN 'open' ELSE f.state END,"
    " fixed_at = CASE WHEN $2 > f.decided_at THEN NULL ELSE f.fixed_at END,"
    " reopened = f.reopened"
    "   + CASE WHEN $2 > f.decided_at AND f.state = 'fixed' THEN 1 ELSE 0 END,"
    " decided_at = GREATEST(f.decided_at, $2)"
    " WHERE f.id = ANY($1::text[])"
    " RETURNING f.id, f.key, f.prev_state AS state, f.prev_decided_at AS decided_at, f.digest,"
    " f.last_seen = $2 AS newest"
)
# Keys for `$1` new findings, in one round trip.
_NEW_KEYS = "SELECT array_agg(nextval('findings_key_seq')) FROM generate_series(1, $1)"


async def first_scan(conn: asyncpg.Connection, tool: str, target: str, scan_id: str) -> bool:
    """Whether no other scan of the tool and target has stored any of its result, so that
    every finding of them is this scan's (call under `lock`). A scan stored before results
    came in parts (migration 0002) has `result_at` but no `result_part`."""
    return not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scans WHERE target = $1 AND tool = $2 AND id <> $3"
        " AND (result_part > 0 OR result_at IS NOT NULL))",
        target,
        tool,
        scan_id,
    )


async def record_seen(
    conn: asyncpg.Connection,
    *,
    scan_id: str,
    scan_key: int,
    tool: str,
    target: str,
    domain: str,
    at: datetime,
    findings: Sequence[Finding],
) -> int:
    """Store the findings a scan (part) saw and each one's change; return how many.

    Runs inside the caller's transaction, once per part (the caller skips a part it stored
    before). Under the (tool, target) lock the state read is the state written: known
    findings are moved forward in one statement, findings never seen are COPYed in, and a
    body is rewritten only when a newer sighting reports it differently.
    """
    if not findings:
        return 0
    await lock(conn, tool, target)
    args = (conn, scan_id, scan_key, tool, target, domain, at, findings)
    # A target's first scan (every finding new, unless an earlier part of it reported the
    # same one) skips probing for known ones.
    if await first_scan(conn, tool, target, scan_id):
        try:
            async with conn.transaction():
                return await _record(*args, probe=False)
        except asyncpg.UniqueViolationError:
            pass
    return await _record(*args, probe=True)


async def _record(
    conn: asyncpg.Connection,
    scan_id: str,
    scan_key: int,
    tool: str,
    target: str,
    domain: str,
    at: datetime,
    findings: Sequence[Finding],
    *,
    probe: bool,
) -> int:
    by_fp = {f.fingerprint: f for f in findings}
    ids = [finding_id(tool, target, fp) for fp in by_fp]
    rows = await conn.fetch(_SEEN_KNOWN, ids, at, scan_id) if probe else []
    before = {r["id"]: r for r in rows}
    encode = _encoder.encode
    raws = [encode(f) for f in by_fp.values()]
    digests = [hashlib.blake2b(raw, digest_size=16).hexdigest() for raw in raws]
    ranks = [f.severity.rank for f in by_fp.values()]
    fresh_at = [i for i, fid in enumerate(ids) if fid not in before]
    keys: list[int] = await conn.fetchval(_NEW_KEYS, len(fresh_at)) if fresh_at else []
    tail = (at, at, scan_id, at)
    fresh = [
        (ids[i], key, tool, target, domain, ranks[i], raws[i].decode(), digests[i], *tail)
        for i, key in zip(fresh_at, keys, strict=True)
    ]
    new = Change.NEW.value  # on_seen(None, at), without the call per new finding
    seen_rows = [(scan_key, key, ranks[i], new) for i, key in zip(fresh_at, keys, strict=True)]
    rewritten: list[tuple[str, int, str, str]] = []
    if before:
        # `on_seen` depends on the prior only through its state and whether this scan is
        # newer than its decision: named once per such pair, not per finding.
        named: dict[tuple[str, bool], str] = {}
        for i, fid in enumerate(ids):
            old = before.get(fid)
            if old is None:
                continue
            state, decided_at = old["state"], old["decided_at"]
            pair = (state, at > decided_at)
            change = named.get(pair)
            if change is None:
                change = named[pair] = on_seen(Prior(State(state), decided_at), at).change.value
            if old["newest"] and digests[i] != old["digest"]:
                rewritten.append((fid, ranks[i], raws[i].decode(), digests[i]))
            seen_rows.append((scan_key, old["key"], ranks[i], change))
        # In key order, the index inserts of a large part touch each index page once or so.
        seen_rows.sort()
    if fresh:
        await conn.copy_records_to_table("findings", records=fresh, columns=_NEW_COLUMNS)
    if rewritten:
        await conn.execute(
            "UPDATE findings f SET severity = u.severity, body = u.body::jsonb, digest = u.digest"
            " FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[])"
            "   AS u(id, severity, body, digest) WHERE f.id = u.id",
            *(list(column) for column in zip(*rewritten, strict=True)),
        )
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "scan_findings", records=seen_rows, columns=_SEEN_COLUMNS
            )
    except asyncpg.UniqueViolationError:
        # A finding this scan reported in another part too: the first report's change stays.
        await conn.execute(
            "INSERT INTO scan_findings (scan_key, finding_key, severity, change)"
            " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::text[])"
            " ON CONFLICT DO NOTHING",
            *(list(column) for column in zip(*seen_rows, strict=True)),
        )
    return len(seen_rows)


async def apply_fixes(conn: asyncpg.Connection, scan_id: str) -> int | None:
    """Fix what a complete scan covered and did not see, once; return how many (None when the
    scan is not (yet) one that may fix anything). Call with the scan's row locked."""
    scan = await conn.fetchrow(
        "SELECT tool, target, status, result_at, partial, coverage::text AS coverage,"
        " observed_at, fixes_applied, result_parts, key,"
        " (SELECT count(*) FROM scan_result_parts p"
        " WHERE p.scan_id = s.id AND p.attempt = s.result_attempt) AS stored_parts"
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
    await lock(conn, scan["tool"], scan["target"])
    # Nothing was open before a target's first scan.
    first = await first_scan(conn, scan["tool"], scan["target"], scan_id)
    candidates = (
        []
        if first
        else await conn.fetch(
            # What this scan saw was decided at its time or later (record_seen), so `decided_at
            # < at` alone leaves it out. (An anti-join with scan_findings did the same, until the
            # planner, with a million sightings, turned it into 38 s for one scan.)
            "SELECT f.id, f.body::text AS body, f.decided_at FROM findings f"
            " WHERE f.tool = $1 AND f.target = $2 AND f.state = 'open' AND f.decided_at < $3",
            scan["tool"],
            scan["target"],
            at,
        )
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
            "INSERT INTO scan_findings (scan_key, finding_key, severity, change)"
            " SELECT $1, key, severity, 'fixed' FROM findings WHERE id = ANY($2::text[])"
            " ON CONFLICT DO NOTHING",
            scan["key"],
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
        # Commands are applied in stream order, so the latest is the finding's triage; a
        # redelivered one inserts no history row and so updates nothing.
        applied = await conn.fetchval(
            "WITH t AS (INSERT INTO finding_triage (command_id, finding_id, triage, reason,"
            " until, severity_override, triaged_by, triaged_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (command_id) DO NOTHING RETURNING *)"
            " UPDATE findings f SET triage = t.triage, triage_reason = t.reason,"
            " triage_until = t.until, severity_override = t.severity_override,"
            " triaged_by = t.triaged_by, triaged_at = t.triaged_at"
            " FROM t WHERE f.id = t.finding_id RETURNING t.seq",
            cmd.command_id,
            cmd.finding_id,
            cmd.triage.value,
            cmd.reason,
            cmd.until,
            override,
            cmd.requested_by,
            cmd.requested_at,
        )
        return applied is not None


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
