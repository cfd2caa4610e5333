"""Ingest's SQL against real PostgreSQL applies the change rules as the pure function does,
including replayed parts and a late result of an older scan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts.coverage import Coverage, PortRange
from contracts.findings import Finding, Severity
from contracts.nmap import NmapRun
from contracts.results import ScanResult
from contracts.scans import ScanEvent, ScanStatus, StartScan
from handlers import store

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(database_url)
    try:
        yield c
    finally:
        await c.close()


def port(target: str, n: int) -> Finding:
    return Finding(
        tool="nmap",
        severity=Severity.INFO,
        title=f"Open port {n}/tcp",
        fingerprint=f"{target}/tcp/{n}",
        host=target,
        port=n,
        protocol="tcp",
    )


class Target:
    """Scans of one fresh target, each stored the way ingest stores them."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.name = f"t{uuid.uuid4().hex[:10]}.test"

    async def start(self, at: datetime) -> str:
        """A scan of this target, started (stored as ingest stores its start command)."""
        scan_id = uuid.uuid4().hex
        await store.insert_scans(
            self.conn,
            [
                StartScan(
                    scan_id=scan_id,
                    target=self.name,
                    domain=self.name,
                    tool="nmap",
                    config={},
                    deadline_seconds=60,
                    requested_by="t",
                    requested_at=at,
                )
            ],
        )
        return scan_id

    async def scan(
        self,
        hours: int,
        ports: set[int],
        *,
        covered: range = range(1, 1025),
        status: ScanStatus = ScanStatus.SUCCEEDED,
        partial: bool = False,
        succeed_first: bool = False,
    ) -> str:
        at = T0 + timedelta(hours=hours)
        scan_id = await self.start(at)
        result = ScanResult(
            scan_id=scan_id,
            tool="nmap",
            target=self.name,
            finished_at=at,
            exit_code=0,
            partial=partial,
            findings=tuple(port(self.name, n) for n in sorted(ports)),
            data=NmapRun(),
            coverage=Coverage(
                hosts=(self.name,), ports=(PortRange("tcp", covered.start, covered.stop - 1),)
            ),
        )
        event = ScanEvent(scan_id=scan_id, status=status, at=at, exit_code=0)
        if succeed_first:
            await store.apply_event(self.conn, event)
            await store.store_result(self.conn, result)
        else:
            await store.store_result(self.conn, result)
            await store.apply_event(self.conn, event)
        return scan_id

    async def changes(self, scan_id: str) -> dict[int, str]:
        rows = await self.conn.fetch(
            "SELECT (f.body->>'port')::int AS port, sf.change FROM scan_findings sf"
            " JOIN findings f ON f.key = sf.finding_key"
            " JOIN scans s ON s.key = sf.scan_key WHERE s.id = $1",
            scan_id,
        )
        return {r["port"]: r["change"] for r in rows}

    async def states(self) -> dict[int, tuple[str, int]]:
        rows = await self.conn.fetch(
            "SELECT (body->>'port')::int AS port, state, reopened FROM findings"
            " WHERE tool = 'nmap' AND target = $1",
            self.name,
        )
        return {r["port"]: (r["state"], r["reopened"]) for r in rows}


async def test_the_sequence_of_the_issue(conn: asyncpg.Connection) -> None:
    t = Target(conn)
    s1 = await t.scan(1, {22, 80})
    assert await t.changes(s1) == {22: "new", 80: "new"}
    s2 = await t.scan(2, {80})
    assert await t.changes(s2) == {22: "fixed", 80: "unchanged"}
    s3 = await t.scan(3, {22, 80, 443})
    assert await t.changes(s3) == {22: "reopened", 80: "unchanged", 443: "new"}
    s4 = await t.scan(4, set(), covered=range(22, 23))  # port 22 only
    assert await t.changes(s4) == {22: "fixed"}
    assert await t.states() == {22: ("fixed", 1), 80: ("open", 0), 443: ("open", 0)}
    # A result that arrives after the success event fixes the same way.
    s5 = await t.scan(5, {22}, covered=range(22, 81), succeed_first=True)
    assert await t.changes(s5) == {22: "reopened", 80: "fixed"}


@pytest.mark.parametrize(
    "how",
    [
        {"status": ScanStatus.FAILED},
        {"status": ScanStatus.CANCELLED},
        {"status": ScanStatus.TIMED_OUT},
        {"partial": True},
    ],
)
async def test_an_incomplete_scan_fixes_nothing(conn: asyncpg.Connection, how: dict) -> None:  # type: ignore[type-arg]
    t = Target(conn)
    await t.scan(1, {22, 80})
    incomplete = await t.scan(2, {80}, **how)
    assert await t.changes(incomplete) == {80: "unchanged"}
    assert await t.states() == {22: ("open", 0), 80: ("open", 0)}


async def test_a_late_result_of_an_older_scan_changes_no_newer_decision(
    conn: asyncpg.Connection,
) -> None:
    t = Target(conn)
    await t.scan(1, {22, 80, 443})
    await t.scan(5, {80})  # fixes 22 and 443 at hour 5
    late = await t.scan(3, {22})  # older: saw 22, did not see 80
    assert await t.changes(late) == {22: "unchanged"}
    assert await t.states() == {22: ("fixed", 0), 80: ("open", 0), 443: ("fixed", 0)}


async def test_a_replayed_result_changes_nothing(conn: asyncpg.Connection) -> None:
    t = Target(conn)
    await t.scan(1, {22})
    s2 = await t.scan(2, {80})
    before = await conn.fetch("SELECT * FROM findings WHERE target = $1 ORDER BY id", t.name)
    replay = ScanResult(
        scan_id=s2,
        tool="nmap",
        target=t.name,
        finished_at=T0 + timedelta(hours=2),
        exit_code=0,
        partial=False,
        findings=(port(t.name, 80),),
        data=NmapRun(),
    )
    await store.store_result(conn, replay)
    after = await conn.fetch("SELECT * FROM findings WHERE target = $1 ORDER BY id", t.name)
    assert [dict(r) for r in after] == [dict(r) for r in before]
    assert await t.changes(s2) == {22: "fixed", 80: "new"}


async def test_a_first_scan_reporting_a_finding_in_two_parts_stores_it_once(
    conn: asyncpg.Connection,
) -> None:
    """A target's first scan skips probing for known findings, until a part repeats one an
    earlier part of the same scan stored."""
    t = Target(conn)
    scan_id = await t.start(T0)
    parts = [(22, 80), (80, 443)]
    for part, found in enumerate(parts, 1):
        result = ScanResult(
            scan_id=scan_id,
            tool="nmap",
            target=t.name,
            finished_at=T0,
            exit_code=0,
            partial=False,
            findings=tuple(port(t.name, n) for n in found),
            data=NmapRun(),
            part=part,
            parts=len(parts),
            coverage=Coverage(hosts=(t.name,), ports=(PortRange("tcp", 1, 1024),))
            if part == len(parts)
            else None,
        )
        await store.store_result(conn, result)
    await store.apply_event(conn, ScanEvent(scan_id=scan_id, status=ScanStatus.SUCCEEDED, at=T0))
    assert await t.changes(scan_id) == {22: "new", 80: "new", 443: "new"}
    assert await t.states() == {22: ("open", 0), 80: ("open", 0), 443: ("open", 0)}


async def test_a_scan_stored_before_results_came_in_parts_is_not_taken_for_none(
    conn: asyncpg.Connection,
) -> None:
    """A scan from before migration 0002 has a result (`result_at`) but no `result_part`: the
    next scan is not a first scan, and fixes what it covered and did not see."""
    t = Target(conn)
    old = await t.scan(1, {22, 80})
    await conn.execute("UPDATE scans SET result_part = 0 WHERE id = $1", old)
    s2 = await t.scan(2, {80})
    assert await t.changes(s2) == {22: "fixed", 80: "unchanged"}


async def test_a_retried_scan_keeps_the_latest_attempts_result_whole(
    conn: asyncpg.Connection,
) -> None:
    """Attempt 1 published one part of three and was lost; attempt 2 splits the same findings
    in two parts. Its first part is not taken for a replay of attempt 1's (which would leave
    80 unseen, and so fixed); a late part of attempt 1 changes nothing."""
    t = Target(conn)
    await t.scan(1, {22, 80, 443})
    at = T0 + timedelta(hours=2)
    scan_id = await t.start(at)

    def part(attempt: int, n: int, of: int, found: tuple[int, ...]) -> ScanResult:
        return ScanResult(
            scan_id=scan_id,
            tool="nmap",
            target=t.name,
            finished_at=at,
            exit_code=0,
            partial=False,
            findings=tuple(port(t.name, p) for p in found),
            data=NmapRun(),
            part=n,
            parts=of,
            coverage=Coverage(hosts=(t.name,), ports=(PortRange("tcp", 1, 1024),))
            if n == of
            else None,
            attempt=attempt,
        )

    await store.store_result(conn, part(1, 1, 3, (22,)))
    assert await store.store_result(conn, part(2, 1, 2, (22, 80))) == 2
    pending = await conn.fetchrow(
        "SELECT result_at, result_attempt FROM scans WHERE id = $1", scan_id
    )
    assert (pending["result_at"], pending["result_attempt"]) == (None, 2)
    assert await store.store_result(conn, part(2, 2, 2, (443,))) == 1
    # Attempt 1's second part, held up somewhere, comes last.
    assert await store.store_result(conn, part(1, 2, 3, (8080,))) == 0
    await store.apply_event(conn, ScanEvent(scan_id=scan_id, status=ScanStatus.SUCCEEDED, at=at))
    assert await t.changes(scan_id) == {22: "unchanged", 80: "unchanged", 443: "unchanged"}
    assert await t.states() == {22: ("open", 0), 80: ("open", 0), 443: ("open", 0)}
