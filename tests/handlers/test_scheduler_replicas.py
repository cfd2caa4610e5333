"""Exactly once with several schedulers: real `jetscan run scheduler` processes on a NATS
and PostgreSQL of their own, one of them killed with SIGKILL during the fire."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.msg import Msg

from bench.processes import EmbeddedStack
from contracts import subjects, wire
from contracts.schedules import ScheduleSpec, UpsertSchedule, run_scan_id
from handlers.scheduler import store
from scanners.requests import Capabilities, validate_start
from scanners.scope import Scope
from tests.handlers.test_scheduler import eventually

pytestmark = pytest.mark.slow


def every_minute() -> ScheduleSpec:
    valid = validate_start(
        "nmap",
        "127.0.0.1",
        {"ports": "1"},
        0,
        Scope.parse("127.0.0.0/8"),
        capabilities=Capabilities(raw_sockets=False),
    )
    return ScheduleSpec(
        target=valid.target.value,
        domain=valid.target.domain,
        tool=valid.tool,
        config=valid.config,
        deadline_seconds=valid.deadline_seconds,
        cron="* * * * *",
    )


def create(schedule_id: str) -> UpsertSchedule:
    return UpsertSchedule(
        schedule_id=schedule_id,
        spec=every_minute(),
        create=True,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )


async def last_minute_due(conn: asyncpg.Connection) -> float:
    """A clock offset that makes a `* * * * *` schedule stored now due at the last minute
    boundary (and only that one): one second before it. Never in a minute's last seconds,
    so no further boundary passes before the test claims."""
    query = "SELECT extract(epoch FROM now() - date_trunc('minute', now()))"
    since = float(await conn.fetchval(query))
    if since > 50:
        await asyncio.sleep(61 - since)
        since = float(await conn.fetchval(query))
    return -since - 1


async def start_commands(js: nats.js.JetStreamContext) -> dict[str, int]:
    """How many start commands COMMANDS holds, by subject (one subject per scan id)."""
    info = await js.stream_info("COMMANDS", subjects_filter="cmd.scan.*.start")
    return dict(info.state.subjects or {})


@pytest.mark.timeout(240)
async def test_three_replicas_fire_200_schedules_once_with_one_killed(tmp_path: Path) -> None:
    embedded = EmbeddedStack(tmp_path)
    async with embedded as settings:
        replicas = [await embedded.role("scheduler", log_level="WARNING") for _ in range(3)]
        conn = await asyncpg.connect(settings.database_url)
        nc = await nats.connect(settings.nats_url)
        try:
            js = nc.jetstream()
            # All 200 must be stored before the minute they are due in begins.
            second = float(await conn.fetchval("SELECT extract(second FROM now())"))
            if second > 40:
                await asyncio.sleep(61 - second)
            ids = [f"replica-test-{i}" for i in range(200)]
            acks = [
                await js.publish_async(
                    subjects.schedule_upsert(i),
                    wire.encode(create(i)),
                    headers={"Nats-Msg-Id": subjects.msg_id("schedule", i, "create")},
                )
                for i in ids
            ]
            await asyncio.gather(*acks)

            async def stored() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM schedules") == 200)

            await eventually(stored, within=15)
            nominals = await conn.fetch("SELECT DISTINCT next_fire_at FROM schedules")
            assert len(nominals) == 1
            nominal: datetime = nominals[0]["next_fire_at"]
            killed = asyncio.Event()

            async def kill_first(_: Msg) -> None:
                if not killed.is_set():
                    killed.set()
                    replicas[0].send_signal(signal.SIGKILL)

            sub = await nc.subscribe("cmd.scan.*.start", cb=kill_first)

            async def all_published() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM schedule_runs WHERE state = 'published'"
                )
                return bool(n == 200)

            # Due within a minute; a claim the killed replica held is published after the
            # lease (30 s) by another.
            await eventually(all_published, within=150)
            await sub.unsubscribe()
            assert killed.is_set() and await replicas[0].wait() == -signal.SIGKILL
            by_subject = await start_commands(js)
            assert by_subject == {subjects.scan_start(run_scan_id(i, nominal)): 1 for i in ids}
            runs = await conn.fetch("SELECT schedule_id, nominal_time, outcome FROM schedule_runs")
            assert len(runs) == 200
            assert {(r["schedule_id"], r["nominal_time"], r["outcome"]) for r in runs} == {
                (i, nominal, "started") for i in ids
            }
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM schedules WHERE next_fire_at = $1",
                    nominal + timedelta(minutes=1),
                )
                == 200
            )
        finally:
            await nc.drain()
            await conn.close()


@pytest.mark.timeout(120)
async def test_a_claim_whose_replica_died_before_publishing_is_published(tmp_path: Path) -> None:
    embedded = EmbeddedStack(tmp_path)
    async with embedded as settings:
        conn = await asyncpg.connect(settings.database_url)
        nc = await nats.connect(settings.nats_url)
        try:
            # Stored just before the last minute boundary, so that fire time has come;
            # claimed by this process, which then publishes nothing: a replica killed
            # between claim and publish.
            await store.upsert(conn, create("orphan"), await last_minute_due(conn))
            claimed, counts, due = await store.claim_due(conn, 0, lambda _: None)
            assert due == 1 and counts == {"started": 1} and len(claimed) == 1
            run = claimed[0]
            assert await start_commands(nc.jetstream()) == {}
            await embedded.role("scheduler", log_level="WARNING")

            async def published() -> bool:
                state = await conn.fetchval(
                    "SELECT state FROM schedule_runs WHERE schedule_id = 'orphan'"
                    " AND nominal_time = $1",
                    run.nominal,
                )
                return bool(state == "published")

            await eventually(published, within=60)
            subject = subjects.scan_start(run_scan_id("orphan", run.nominal))
            assert (await start_commands(nc.jetstream())).get(subject) == 1
        finally:
            await nc.drain()
            await conn.close()


@pytest.mark.timeout(60)
async def test_a_schedule_that_no_longer_parses_holds_up_nothing(tmp_path: Path) -> None:
    embedded = EmbeddedStack(tmp_path)
    async with embedded as settings:
        conn = await asyncpg.connect(settings.database_url)
        try:
            offset = await last_minute_due(conn)
            for name in ("broken", "fine"):
                await store.upsert(conn, create(name), offset)
            # As if tzdata dropped the zone after the schedule was stored.
            await conn.execute("UPDATE schedules SET timezone = 'Gone/Away' WHERE id = 'broken'")
            claimed, counts, due = await store.claim_due(conn, 0, lambda _: None)
            assert due == 2 and counts == {"failed": 1, "started": 1}
            assert [c.schedule_id for c in claimed] == ["fine"]
            row = await conn.fetchrow(
                "SELECT outcome, reason FROM schedule_runs WHERE schedule_id = 'broken'"
            )
            assert row["outcome"] == "failed" and "Gone/Away" in row["reason"]
            late = await conn.fetchval("SELECT due_at - now() FROM schedules WHERE id = 'broken'")
            assert timedelta(minutes=59) < late <= timedelta(hours=1)
        finally:
            await conn.close()
