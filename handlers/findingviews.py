"""SQL for reading findings over time, as the queries service answers them."""

from __future__ import annotations

import asyncpg
import msgspec

from contracts.findings import Finding, Severity
from contracts.scans import ListFindings, StoredFinding
from contracts.tracking import Change, FindingState, Occurrence, Triage, TriageEntry

_finding = msgspec.json.Decoder(Finding)
_SEVERITIES = list(Severity)

# An accepted risk past its expiry counts as untriaged at once, before ingest's sweep
# records the expiry in its history.
TRIAGE = (
    "CASE WHEN f.triage = 'accepted_risk' AND f.triage_until <= now() THEN 'none' ELSE f.triage END"
)
_EXPIRED = "(f.triage = 'accepted_risk' AND f.triage_until <= now())"
_COLUMNS = (
    "f.id, f.body::text AS body, f.first_seen, f.last_seen, f.target, f.domain, f.state, f.tool,"
    " f.fixed_at, f.reopened, f.last_scan_id, f.triaged_by, f.triaged_at,"
    f" {TRIAGE} AS triage,"
    f" CASE WHEN {_EXPIRED} THEN '' ELSE f.triage_reason END AS triage_reason,"
    f" CASE WHEN {_EXPIRED} THEN NULL ELSE f.triage_until END AS triage_until,"
    f" CASE WHEN {_EXPIRED} THEN NULL ELSE f.severity_override END AS severity_override"
)


def _view(row: asyncpg.Record, scan_id: str = "", change: str | None = None) -> StoredFinding:
    override = row["severity_override"]
    return StoredFinding(
        id=row["id"],
        scan_id=scan_id or row["last_scan_id"],
        finding=_finding.decode(row["body"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        target=row["target"],
        domain=row["domain"],
        state=FindingState(row["state"]),
        fixed_at=row["fixed_at"],
        reopened=row["reopened"],
        triage=Triage(row["triage"]),
        triage_reason=row["triage_reason"],
        triage_until=row["triage_until"],
        triaged_by=row["triaged_by"],
        triaged_at=row["triaged_at"],
        severity_override=None if override is None else _SEVERITIES[override],
        change=None if change is None else Change(change),
    )


async def list_findings(
    pool: asyncpg.Pool, q: ListFindings, limit: int, after: tuple[int, int] | None
) -> list[tuple[int, int, StoredFinding]]:
    """One page of `q` as (sort rank, key, finding), most severe first (the severity that
    counts: overridden, else as the listed scan saw it, else as last seen), newest first
    within a severity; `after` is the last (rank, key) returned."""
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    scan = q.changed_in_scan or q.scan_id
    where = ["TRUE"]
    join = ""
    if scan:
        key = f"(SELECT key FROM scans WHERE id = {arg(scan)})"  # noqa: S608
        join = f" JOIN scan_findings sf ON sf.finding_key = f.key AND sf.scan_key = {key}"
        sev = "coalesce(f.severity_override, sf.severity)"
        if not q.changed_in_scan:
            where.append("sf.change <> 'fixed'")
        if q.change is not None:
            where.append(f"sf.change = {arg(q.change.value)}")
    else:
        sev = "coalesce(f.severity_override, f.severity)"
    for column, value in (("target", q.target), ("tool", q.tool)):
        if value:
            where.append(f"f.{column} = {arg(value)}")
    if q.domain:
        # Through the scans' domain index to the targets: findings are indexed by target.
        where.append(
            f"f.target IN (SELECT DISTINCT target FROM scans WHERE domain = {arg(q.domain)})"  # noqa: S608
        )
    if q.state is not None:
        where.append(f"f.state = {arg(q.state.value)}")
    if q.triage is not None:
        where.append(f"{TRIAGE} = {arg(q.triage.value)}")
        if q.triage is not Triage.NONE:
            # Implied by the line above; spelled out so the planner reads findings_triaged.
            where.append("f.triage <> 'none'")
    elif not q.include_false_positives:
        where.append("f.triage <> 'false_positive'")
    where.append(f"{sev} >= {arg(q.min_severity.rank)}")
    if q.severity is not None:
        where.append(f"{sev} = {arg(q.severity.rank)}")
    if after:
        where.append(f"({sev}, f.key) < ({arg(after[0])}, {arg(after[1])})")
    change = ", sf.change AS change" if scan else ""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS}, f.key AS key, {sev} AS sev{change} FROM findings f{join}"  # noqa: S608
        f" WHERE {' AND '.join(where)} ORDER BY sev DESC, f.key DESC LIMIT {arg(limit)}",
        *args,
    )
    return [(r["sev"], r["key"], _view(r, scan, r["change"] if scan else None)) for r in rows]


async def get_finding(pool: asyncpg.Pool, finding_id: str) -> StoredFinding | None:
    """A finding with its triage history and every scan that decided something about it."""
    # One snapshot for the three reads: read apart, a triage applied between them showed in
    # the history but not on the finding (TriageFinding then answered with the old triage).
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM findings f WHERE f.id = $1",  # noqa: S608
            finding_id,
        )
        if row is None:
            return None
        history = await conn.fetch(
            "SELECT command_id, triage, reason, until, severity_override, triaged_by, triaged_at"
            " FROM finding_triage WHERE finding_id = $1 ORDER BY seq",
            finding_id,
        )
        seen = await conn.fetch(
            # Through the scans of the finding's tool and target (scans_target, then the key
            # of scan_findings): scan_findings has no index by finding.
            "SELECT s.id AS scan_id, sf.change, s.status,"
            " coalesce(s.observed_at, s.created_at) AS at FROM scans s"
            " JOIN scan_findings sf ON sf.scan_key = s.key"
            " AND sf.finding_key = (SELECT key FROM findings WHERE id = $1)"
            " WHERE s.target = $2 AND s.tool = $3 ORDER BY at, s.id",
            finding_id,
            row["target"],
            row["tool"],
        )
    view = _view(row)
    return msgspec.structs.replace(
        view,
        history=[
            TriageEntry(
                triage=Triage(h["triage"]),
                by=h["triaged_by"],
                at=h["triaged_at"],
                reason=h["reason"],
                until=h["until"],
                severity_override=(
                    None if h["severity_override"] is None else _SEVERITIES[h["severity_override"]]
                ),
                command_id=h["command_id"],
            )
            for h in history
        ],
        occurrences=[
            Occurrence(
                scan_id=o["scan_id"], change=Change(o["change"]), at=o["at"], status=o["status"]
            )
            for o in seen
        ],
    )
