"""Re-derivation: re-parse scans' stored raw output with today's parsers and rebuild the
findings of their tools and targets from every scan, in order (`changes.derive`).

Per (tool, target), under the same advisory lock as ingest: the chosen scans are parsed again
from their artifact (`scans/<id>/<output file>` in the `artifacts` object store); the other
scans of the target keep what they saw. Every finding's state, first/last seen, fixed_at and
reopen count, and every scan's changes, are recomputed from all of them; triage columns are
not touched, so triage stays. A finding no scan sees any more (a parser fix changed its
fingerprint) is deleted unless it was triaged. Running it twice gives the same tables.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.coverage import Coverage, covers
from contracts.findings import Finding
from handlers import findings
from handlers.ingest.changes import ScanFacts, derive
from scanners import TOOLS, decode_config
from scanners.errors import ConfigError, ParseError, TargetError
from scanners.targets import parse_target

log = logging.getLogger(__name__)
ARTIFACTS = "artifacts"
_finding = msgspec.json.Decoder(Finding)
_coverage = msgspec.json.Decoder(Coverage)
_encoder = msgspec.json.Encoder()


@dataclass
class Outcome:
    """What a re-derivation did: scans re-parsed, skipped (with why), findings before/after."""

    reparsed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    targets: int = 0
    findings_before: int = 0
    findings_after: int = 0


@dataclass
class _Parsed:
    findings: dict[str, Finding]
    coverage: Coverage | None
    partial: bool
    version: str


async def chosen_scans(
    conn: asyncpg.Connection, *, scan_id: str = "", tool: str = "", every: bool = False
) -> list[asyncpg.Record]:
    """The scans to re-parse: one, a tool's, or all; only those whose result was stored."""
    where, args = "s.result_at IS NOT NULL", []
    if scan_id:
        where += " AND s.id = $1"
        args.append(scan_id)
    elif tool:
        where += " AND s.tool = $1"
        args.append(tool)
    elif not every:
        raise ValueError("name a scan, a tool, or all")
    return list(
        await conn.fetch(
            "SELECT s.id, s.tool, s.target, s.artifact FROM scans s"  # noqa: S608
            f" WHERE {where} ORDER BY s.tool, s.target",
            *args,
        )
    )


async def _parse(js: JetStreamContext, scan: asyncpg.Record, config: Any) -> _Parsed | str:
    """The scan's raw output parsed with today's parser, or why it cannot be."""
    spec = TOOLS.get(scan["tool"])
    if spec is None:
        return f"unknown tool {scan['tool']!r}"
    if not scan["artifact"]:
        return "no raw output was stored"
    try:
        store = await js.object_store(ARTIFACTS)
        raw = (await store.get(scan["artifact"])).data or b""
    except NotFoundError:
        return f"raw output {scan['artifact']} is gone from the object store"
    try:
        output = spec.parse(raw)
        target = parse_target(
            scan["target"],
            allowed_kinds=spec.target_kinds,
            ipv4_min_prefix=0,
            ipv6_min_prefix=0,
        )
        decoded = decode_config(scan["tool"], config)
    except (ParseError, TargetError, ConfigError) as exc:
        return f"does not re-parse: {exc}"
    return _Parsed(
        findings={f.fingerprint: f for f in output.findings},
        coverage=spec.coverage(decoded, target, output.data),
        partial=output.partial,
        version=spec.version(output.data),
    )


async def rederive(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    *,
    scan_id: str = "",
    tool: str = "",
    every: bool = False,
) -> Outcome:
    outcome = Outcome()
    async with pool.acquire() as conn:
        chosen = await chosen_scans(conn, scan_id=scan_id, tool=tool, every=every)
    groups: dict[tuple[str, str], list[str]] = {}
    for scan in chosen:
        groups.setdefault((scan["tool"], scan["target"]), []).append(scan["id"])
    for (group_tool, target), ids in groups.items():
        async with pool.acquire() as conn:
            await _rebuild(conn, js, group_tool, target, set(ids), outcome)
        outcome.targets += 1
    return outcome


async def _rebuild(
    conn: asyncpg.Connection,
    js: JetStreamContext,
    tool: str,
    target: str,
    reparse: set[str],
    outcome: Outcome,
) -> None:
    scans = await conn.fetch(
        "SELECT s.id, s.tool, s.target, s.artifact, s.config::text AS config, s.status,"
        " s.partial, s.coverage::text AS coverage, s.observed_at, s.result_parts,"
        " (SELECT count(*) FROM scan_result_parts p"
        " WHERE p.scan_id = s.id AND p.attempt = s.result_attempt) AS stored_parts"
        " FROM scans s WHERE s.tool = $1 AND s.target = $2 AND s.observed_at IS NOT NULL",
        tool,
        target,
    )
    # Parsed before the lock: fetching and parsing a large output takes a while.
    parsed: dict[str, _Parsed] = {}
    for scan in scans:
        if scan["id"] not in reparse:
            continue
        got = await _parse(js, scan, msgspec.json.decode(scan["config"]))
        if isinstance(got, str):
            outcome.skipped[scan["id"]] = got
        else:
            parsed[scan["id"]] = got
            outcome.reparsed.append(scan["id"])
    async with conn.transaction():
        await findings.lock(conn, tool, target)
        facts = await _facts(conn, scans, parsed)
        await _write(conn, tool, target, scans, parsed, facts, outcome)


async def _facts(
    conn: asyncpg.Connection, scans: Sequence[asyncpg.Record], parsed: dict[str, _Parsed]
) -> list[ScanFacts]:
    kept = [s["id"] for s in scans if s["id"] not in parsed]
    seen: dict[str, dict[str, Finding]] = {s["id"]: {} for s in scans}
    for row in await conn.fetch(
        "SELECT s.id AS scan_id, f.body::text AS body FROM scans s"
        " JOIN scan_findings sf ON sf.scan_key = s.key JOIN findings f ON f.key = sf.finding_key"
        " WHERE s.id = ANY($1::text[]) AND sf.change <> 'fixed'",
        kept,
    ):
        finding = _finding.decode(row["body"])
        seen[row["scan_id"]][finding.fingerprint] = finding
    bodies: dict[str, Finding] = {}
    out = []
    for scan in scans:
        got = parsed.get(scan["id"])
        if got is not None:
            seen[scan["id"]] = got.findings
        bodies.update(seen[scan["id"]])
        coverage = (
            got.coverage
            if got is not None
            else (_coverage.decode(scan["coverage"]) if scan["coverage"] else None)
        )
        complete = (
            scan["status"] == "succeeded"
            and not scan["partial"]
            and not (got is not None and got.partial)
            and coverage is not None
            and scan["stored_parts"] >= scan["result_parts"]
        )

        def covered(fp: str, cov: Coverage | None = coverage) -> bool:
            return cov is not None and fp in bodies and covers(cov, bodies[fp])

        out.append(
            ScanFacts(
                scan_id=scan["id"],
                at=scan["observed_at"],
                seen=seen[scan["id"]],
                complete=complete,
                covered=covered,
            )
        )
    return out


async def _write(
    conn: asyncpg.Connection,
    tool: str,
    target: str,
    scans: Sequence[asyncpg.Record],
    parsed: dict[str, _Parsed],
    facts: list[ScanFacts],
    outcome: Outcome,
) -> None:
    tracks, per_scan = derive(facts)
    domain = await conn.fetchval(
        "SELECT domain FROM scans WHERE tool = $1 AND target = $2 LIMIT 1", tool, target
    )
    outcome.findings_before += await conn.fetchval(
        "SELECT count(*) FROM findings WHERE tool = $1 AND target = $2", tool, target
    )
    ids = {fp: findings.finding_id(tool, target, fp) for fp in tracks}
    rows = []
    for fp, t in tracks.items():
        body = t.body
        assert isinstance(body, Finding)
        raw = _encoder.encode(body)
        rows.append(
            (
                ids[fp],
                body.severity.rank,
                raw.decode(),
                hashlib.blake2b(raw, digest_size=16).hexdigest(),
                t.state.value,
                t.decided_at,
                t.first_seen,
                t.last_seen,
                t.last_scan_id,
                t.fixed_at,
                t.reopened,
            )
        )
    scan_ids = [s["id"] for s in scans]
    await conn.execute(
        "DELETE FROM scan_findings WHERE scan_key IN (SELECT key FROM scans WHERE id = ANY($1))",
        scan_ids,
    )
    await conn.execute(
        "DELETE FROM findings WHERE tool = $1 AND target = $2 AND triage = 'none'"
        " AND NOT (id = ANY($3::text[]))",
        tool,
        target,
        list(ids.values()),
    )
    columns: list[Sequence[object]] = list(zip(*rows, strict=True)) if rows else [()] * 11
    await conn.execute(
        "INSERT INTO findings (id, tool, target, domain, severity, body, digest,"
        " state, decided_at, first_seen, last_seen, last_scan_id, fixed_at, reopened)"
        " SELECT i, $1, $2, $3, sev, b::jsonb, d, st, da, fs, ls, lsi, fa, r FROM unnest("
        " $4::text[], $5::smallint[], $6::text[], $7::text[], $8::text[],"
        " $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::text[],"
        " $13::timestamptz[], $14::int[]) AS u(i, sev, b, d, st, da, fs, ls, lsi, fa, r)"
        " ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, body = EXCLUDED.body,"
        " digest = EXCLUDED.digest, state = EXCLUDED.state, decided_at = EXCLUDED.decided_at,"
        " first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,"
        " last_scan_id = EXCLUDED.last_scan_id, fixed_at = EXCLUDED.fixed_at,"
        " reopened = EXCLUDED.reopened",
        tool,
        target,
        domain or "",
        *(list(c) for c in columns),
    )
    by_scan = {f.scan_id: f for f in facts}
    links = [
        (scan_id, ids[fp], _rank(by_scan[scan_id], tracks[fp].body, fp), change.value)
        for scan_id, changed in per_scan.items()
        for fp, change in changed.items()
    ]
    if links:
        await conn.execute(
            "INSERT INTO scan_findings (scan_key, finding_key, severity, change)"
            " SELECT s.key, f.key, u.severity, u.change FROM unnest($1::text[], $2::text[],"
            " $3::smallint[], $4::text[]) AS u(scan_id, finding_id, severity, change)"
            " JOIN scans s ON s.id = u.scan_id JOIN findings f ON f.id = u.finding_id",
            *(list(c) for c in zip(*links, strict=True)),
        )
    for scan_id, got in parsed.items():
        # The raw output names the scanner's version, also for a scan from before results did.
        await conn.execute(
            "UPDATE scans SET coverage = $2::jsonb,"
            " scanner_version = CASE WHEN $3 = '' THEN scanner_version ELSE $3 END WHERE id = $1",
            scan_id,
            None if got.coverage is None else _encoder.encode(got.coverage).decode(),
            got.version,
        )
    # A scan that may fix has had its fixes now; one that may not yet (its success or a
    # part still to come) gets them from ingest as usual.
    await conn.execute(
        "UPDATE scans SET fixes_applied = u.done FROM unnest($1::text[], $2::bool[]) AS u(id, done)"
        " WHERE scans.id = u.id",
        [f.scan_id for f in facts],
        [f.complete for f in facts],
    )
    outcome.findings_after += len(tracks)
    log.info(
        "re-derived %d findings of %s on %s from %d scans", len(tracks), tool, target, len(scans)
    )


def _rank(scan: ScanFacts, latest: object, fp: str) -> int:
    """The severity a scan saw a finding at (its latest, for a scan that fixed it)."""
    body = scan.seen.get(fp, latest)
    assert isinstance(body, Finding)
    return body.severity.rank
