from __future__ import annotations

from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from contracts.scans import StartScan
from handlers import database, outputstore, store


def queued(scan_id: str, at: datetime) -> StartScan:
    """A start command for an nmap scan of 127.0.0.1, as the stores' tests project it."""
    return StartScan(
        scan_id=scan_id,
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config={},
        deadline_seconds=60,
        requested_by="t",
        requested_at=at,
    )


async def test_migrations_apply_once(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await database.migrate(conn) == []  # the session fixture already applied them
        versions = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        ]
        assert versions == [n for n, _, _ in database.migration_files()]
    finally:
        await conn.close()


def test_migration_numbers_are_unique(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0003_c.sql").write_text("SELECT 1")
    assert [n for n, _, _ in database.migration_files(tmp_path)] == [1, 3]
    (tmp_path / "0003_d.sql").write_text("SELECT 1")
    with pytest.raises(database.MigrationError, match="share a number"):
        database.migration_files(tmp_path)


def test_migration_file_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "1_a.sql").write_text("SELECT 1")
    with pytest.raises(database.MigrationError, match="NNNN_name"):
        database.migration_files(tmp_path)


async def test_events_out_of_order_never_move_a_scan_back(database_url: str) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    from contracts.scans import ScanEvent, ScanStatus

    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    scan_id = uuid.uuid4().hex
    conn = await asyncpg.connect(database_url)
    try:
        await store.insert_scans(
            conn,
            [queued(scan_id, t0)],
        )

        def ev(status: ScanStatus, s: int, code: int | None = None) -> ScanEvent:
            return ScanEvent(
                scan_id=scan_id, status=status, at=t0 + timedelta(seconds=s), exit_code=code
            )

        assert await store.apply_event(conn, ev(ScanStatus.SUCCEEDED, 9, 0)) == ScanStatus.SUCCEEDED
        assert await store.apply_event(conn, ev(ScanStatus.RUNNING, 2)) is None
        assert await store.apply_event(conn, ev(ScanStatus.LAUNCHING, 1)) is None
        assert await store.apply_event(conn, ev(ScanStatus.FAILED, 10, 3)) is None
        row = await conn.fetchrow("SELECT * FROM scans WHERE id = $1", scan_id)
        assert row["status"] == "succeeded"
        assert row["exit_code"] == 0
        assert row["started_at"] == t0 + timedelta(seconds=2)
        assert row["finished_at"] == t0 + timedelta(seconds=9)
    finally:
        await conn.close()


async def test_a_success_waits_for_a_result_still_arriving_in_parts(database_url: str) -> None:
    import uuid
    from datetime import UTC, datetime

    from contracts.findings import Finding, Severity
    from contracts.nmap import NmapRun
    from contracts.results import ScanResult
    from contracts.scans import ScanEvent, ScanStatus

    now = datetime.now(UTC)
    scan_id = uuid.uuid4().hex
    start = queued(scan_id, now)

    def part(n: int) -> ScanResult:
        finding = Finding(
            tool="nmap",
            severity=Severity.INFO,
            title=f"t{n}",
            fingerprint=f"{scan_id}-{n}",
            description="d",
        )
        return ScanResult(
            scan_id=scan_id,
            tool="nmap",
            target="127.0.0.1",
            finished_at=now,
            exit_code=0,
            partial=False,
            findings=(finding,),
            data=NmapRun(),
            part=n,
            parts=3,
        )

    success = ScanEvent(scan_id=scan_id, status=ScanStatus.SUCCEEDED, at=now, exit_code=0)
    conn = await asyncpg.connect(database_url)
    try:
        await store.insert_scans(conn, [start])
        # Nothing of a result yet: only `await_result` waits for one.
        with pytest.raises(store.ResultPending):
            await store.apply_event(conn, success, await_result=True, await_parts=True)
        await store.store_result(conn, part(1))
        # One part of three stored: past `await_result`'s patience, `await_parts` waits on.
        with pytest.raises(store.ResultPending):
            await store.apply_event(conn, success, await_parts=True)
        await store.store_result(conn, part(1))  # a redelivery moves nothing back
        await store.store_result(conn, part(2))
        with pytest.raises(store.ResultPending):
            await store.apply_event(conn, success, await_parts=True)
        await store.store_result(conn, part(3))
        assert await store.apply_event(conn, success, await_parts=True) == ScanStatus.SUCCEEDED
        row = await conn.fetchrow("SELECT result_part, result_at FROM scans WHERE id = $1", scan_id)
        assert row["result_part"] == 3 and row["result_at"] is not None
    finally:
        await conn.close()


async def test_a_success_with_no_result_coming_is_not_held_by_await_parts(
    database_url: str,
) -> None:
    import uuid
    from datetime import UTC, datetime

    from contracts.scans import ScanEvent, ScanStatus

    now = datetime.now(UTC)
    scan_id = uuid.uuid4().hex
    conn = await asyncpg.connect(database_url)
    try:
        await store.insert_scans(
            conn,
            [queued(scan_id, now)],
        )
        success = ScanEvent(scan_id=scan_id, status=ScanStatus.SUCCEEDED, at=now, exit_code=0)
        # A job that sent no result at all is not waited for once `await_result` is over.
        assert await store.apply_event(conn, success, await_parts=True) == ScanStatus.SUCCEEDED
    finally:
        await conn.close()


@pytest.mark.parametrize("in_transaction", [False, True])
async def test_console_lines_written_twice_are_kept_once(
    database_url: str, in_transaction: bool
) -> None:
    import uuid
    from datetime import UTC

    from contracts.output import OutputLine, Stream

    scan_id = f"out-{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC)

    def lines(first: int, last: int) -> list[OutputLine]:
        return [
            OutputLine(scan_id=scan_id, seq=n, time=at, stream=Stream.STDOUT, text=f"line {n}")
            for n in range(first, last + 1)
        ]

    conn = await asyncpg.connect(database_url)
    try:
        await outputstore.insert_output(conn, lines(1, 3))
        # A redelivered batch overlapping what is stored: the COPY fails on the duplicate,
        # and the fallback keeps the new lines without repeating the old.
        if in_transaction:
            async with conn.transaction():
                await outputstore.insert_output(conn, lines(2, 5))
        else:
            await outputstore.insert_output(conn, lines(2, 5))
        rows = await conn.fetch(
            "SELECT seq, text FROM scan_output WHERE scan_id = $1 ORDER BY seq", scan_id
        )
    finally:
        await conn.close()
    assert [(r["seq"], r["text"]) for r in rows] == [(n, f"line {n}") for n in range(1, 6)]
