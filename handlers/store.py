"""PostgreSQL: the connection pool, numbered migrations, and every SQL statement."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import asyncpg
import msgspec

from contracts.scans import FindingCounts, ScanStatus, ScanView

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x6A657473


class MigrationError(Exception):
    """The migrations folder or the database's migration history is inconsistent."""


def migration_files(folder: Path = MIGRATIONS) -> list[tuple[int, str, str]]:
    out = []
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file name {path.name!r} is not NNNN_name.sql")
        out.append((int(m[1]), path.name, path.read_text()))
    numbers = [n for n, _, _ in out]
    if numbers != list(range(1, len(numbers) + 1)):
        raise MigrationError(f"migrations must be numbered 1..n without gaps, got {numbers}")
    return out


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied.

    An advisory lock serialises concurrent starters (several replicas booting at once).
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for number, name, sql in migration_files():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name
                )
            log.info("applied migration %s", name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def connect_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    if pool is None:  # pragma: no cover - asyncpg returns None only when not awaited
        raise RuntimeError("asyncpg returned no pool")
    return pool


# --- scans -------------------------------------------------------------------------

_SCAN_COLUMNS = (
    "s.id, s.target, s.domain, s.tool, s.config::text AS config, s.status, s.exit_code,"
    " s.error, s.deadline_seconds, s.requested_by, s.schedule_id, s.created_at, s.started_at,"
    " s.finished_at, c.info, c.low, c.medium, c.high, c.critical"
)
_FROM_SCANS = (
    " FROM scans s LEFT JOIN LATERAL (SELECT"
    " count(*) FILTER (WHERE severity = 0) AS info,"
    " count(*) FILTER (WHERE severity = 1) AS low,"
    " count(*) FILTER (WHERE severity = 2) AS medium,"
    " count(*) FILTER (WHERE severity = 3) AS high,"
    " count(*) FILTER (WHERE severity = 4) AS critical"
    " FROM findings f WHERE f.scan_id = s.id) c ON TRUE"
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
) -> list[ScanView]:
    """Newest first; `after` is the (created_at, id) of the last row already returned."""
    where: list[str] = ["TRUE"]
    args: list[object] = []
    for column, value in (("domain", domain), ("tool", tool), ("status", status)):
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
