"""Migration 0003 on a database with findings from before it: one row per (tool, fingerprint)
across targets becomes one per (tool, target, fingerprint), with ids as ingest computes them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from handlers import database
from handlers.findings import finding_id


@pytest.fixture
async def old_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        conn = await asyncpg.connect(database_url.replace("/postgres?", f"/{name}?", 1))
        try:
            for number, _, sql in database.migration_files():
                if number < 3:
                    await conn.execute(sql)
            yield conn
        finally:
            await conn.close()
        await admin.execute(f"DROP DATABASE {name}")
    finally:
        await admin.close()


async def test_old_findings_are_split_per_target(old_db: asyncpg.Connection) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for i, (scan_id, target) in enumerate((("s1", "a.test"), ("s2", "b.test"), ("s3", "a.test"))):
        await old_db.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at,"
            " finished_at) VALUES ($1, $2, $2, 'nmap', 'succeeded', 60, $3, $3)",
            scan_id,
            target,
            t0 + timedelta(days=i),
        )
    await old_db.execute(
        "INSERT INTO findings (id, tool, fingerprint, severity, body, first_seen, last_seen,"
        " last_scan_id) VALUES ('old', 'nmap', 'fp', 0, '{}', $1, $2, 's3')",
        t0,
        t0 + timedelta(days=2),
    )
    for scan_id in ("s1", "s2", "s3"):
        await old_db.execute(
            "INSERT INTO scan_findings (scan_id, finding_id, severity) VALUES ($1, 'old', 0)",
            scan_id,
        )
    [(_, _, sql)] = [m for m in database.migration_files() if m[0] == 3]
    async with old_db.transaction():
        await old_db.execute(sql)

    rows = await old_db.fetch(
        "SELECT id, target, first_seen, last_seen, last_scan_id, state FROM findings"
        " ORDER BY target"
    )
    assert [(r["id"], r["target"], r["last_scan_id"], r["state"]) for r in rows] == [
        (finding_id("nmap", "a.test", "fp"), "a.test", "s3", "open"),
        (finding_id("nmap", "b.test", "fp"), "b.test", "s2", "open"),
    ]
    assert (rows[0]["first_seen"], rows[0]["last_seen"]) == (t0, t0 + timedelta(days=2))
    links = await old_db.fetch("SELECT scan_id, finding_id, change FROM scan_findings ORDER BY 1")
    assert [(r["scan_id"], r["finding_id"], r["change"]) for r in links] == [
        ("s1", finding_id("nmap", "a.test", "fp"), "new"),
        ("s2", finding_id("nmap", "b.test", "fp"), "new"),
        ("s3", finding_id("nmap", "a.test", "fp"), "unchanged"),
    ]


async def test_links_move_to_integer_keys(old_db: asyncpg.Connection) -> None:
    """Migration 0009: scan_findings by (scan_id, finding_id) becomes (scan_key, finding_key),
    every link kept; a link to a scan or finding that no longer exists is dropped."""
    for number, _, sql in database.migration_files():
        if 3 <= number < 9:
            await old_db.execute(sql)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for i, scan_id in enumerate(("s1", "s2")):
        await old_db.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
            " VALUES ($1, 'a.test', 'a.test', 'nmap', 'succeeded', 60, $2)",
            scan_id,
            t0 + timedelta(days=i),
        )
    for fp in ("fp1", "fp2"):
        await old_db.execute(
            "INSERT INTO findings (id, tool, target, fingerprint, severity, body, first_seen,"
            " last_seen, last_scan_id, decided_at) VALUES ($1, 'nmap', 'a.test', $2, 1, '{}',"
            " $3, $3, 's1', $3)",
            finding_id("nmap", "a.test", fp),
            fp,
            t0,
        )
    links = [
        ("s1", finding_id("nmap", "a.test", "fp1"), 3, "new"),
        ("s1", finding_id("nmap", "a.test", "fp2"), 1, "new"),
        ("s2", finding_id("nmap", "a.test", "fp1"), 3, "unchanged"),
        ("s2", finding_id("nmap", "a.test", "fp2"), 1, "fixed"),
        ("gone", finding_id("nmap", "a.test", "fp1"), 3, "new"),
        ("s2", "gone", 3, "new"),
    ]
    await old_db.executemany(
        "INSERT INTO scan_findings (scan_id, finding_id, severity, change) VALUES ($1, $2, $3, $4)",
        links,
    )
    [(_, _, sql)] = [m for m in database.migration_files() if m[0] == 9]
    async with old_db.transaction():
        await old_db.execute(sql)
    moved = await old_db.fetch(
        "SELECT s.id AS scan_id, f.id AS finding_id, l.severity, l.change FROM scan_findings l"
        " JOIN scans s ON s.key = l.scan_key JOIN findings f ON f.key = l.finding_key"
        " ORDER BY 1, 2"
    )
    assert [tuple(r) for r in moved] == sorted(links[:4])
    assert await old_db.fetchval("SELECT count(*) FROM scan_findings") == 4
    # New rows get keys of their own, after the existing ones.
    await old_db.execute(
        "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
        " VALUES ('s3', 'a.test', 'a.test', 'nmap', 'queued', 60, $1)",
        t0,
    )
    keys = await old_db.fetch("SELECT key FROM scans ORDER BY key")
    assert len({r["key"] for r in keys}) == 3
