"""PostgreSQL itself: the connection pool and the numbered migrations in `migrations/`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg

from handlers import metrics

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
    # Numbers are handed out per change before branches merge, so a number may be unused
    # (a gap); two files with one number would each be taken for the other.
    numbers = [n for n, _, _ in out]
    # Gaps are allowed: numbers are handed out to changes in advance, so branches merge
    # without renumbering; a pending lower number is still applied (in order).
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number: {numbers}")
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


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query when a connection goes back to the pool.

    asyncpg's default (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is one
    more round trip per release, and ingest releases after every small batch. Pooled
    connections never change session state here (no SET, LISTEN, cursors or session locks;
    the migration lock is taken and released on a connection of its own), and asyncpg still
    rolls back a transaction left open before this is called.
    """


async def connect_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_keep_session)
    if pool is None:  # pragma: no cover - asyncpg returns None only when not awaited
        raise RuntimeError("asyncpg returned no pool")
    return metrics.watch_pool(pool)
