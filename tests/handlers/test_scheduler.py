"""The scheduler on the real stack: fires on the real clock, catch-up, misses, pause,
run-now, overlap and scope, each recorded with its outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import nats
import pytest

from contracts import subjects
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.schedules import run_scan_id
from tests.conftest import TERMINAL, Stack, scan_service, wait_status

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def schedule_service(stack: Stack) -> AsyncIterator[v1.ScheduleServiceStub]:
    """A ScheduleService client of the stack's edge, on scan_service's channel and token."""
    async with scan_service(stack) as scans:
        yield v1.ScheduleServiceStub(scans.channel, metadata=scans.metadata, timeout=15)


def nmap_schedule(port: int | str, cron: str = "* * * * *", **fields: Any) -> v1.Schedule:
    config = {"ports": str(port), "reverse_dns": False, **fields.pop("config", {})}
    return v1.Schedule(
        target=fields.pop("target", "127.0.0.1"),
        tool="nmap",
        config=Struct.from_dict(config),
        cron=cron,
        **fields,
    )


async def eventually(check: Any, within: float = 20) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def runs_of(schedules: v1.ScheduleServiceStub, schedule_id: str) -> list[v1.ScheduleRun]:
    page = await schedules.list_schedule_runs(
        v1.ListScheduleRunsRequest(schedule_id=schedule_id, page_size=100)
    )
    return list(reversed(page.runs))


@pytest.mark.timeout(180)
async def test_a_schedule_due_at_the_next_minute_starts_its_scan_within_2s(
    stack: Stack, open_port: int
) -> None:
    second = datetime.now(UTC).second
    if second >= 55:
        # Not in the last seconds of a minute: the fire time the edge answers with must
        # still be ahead when the scheduler stores the schedule.
        await asyncio.sleep(61 - second)
    async with schedule_service(stack) as schedules, scan_service(stack) as scans:
        created = await schedules.create_schedule(
            v1.CreateScheduleRequest(schedule=nmap_schedule(open_port))
        )
        nominal = created.next_run_at
        assert nominal is not None and nominal.second == 0 and nominal.microsecond == 0
        try:

            async def stored() -> v1.Schedule | None:
                s = await schedules.get_schedule(v1.GetScheduleRequest(id=created.id))
                return s if s.last_scan_id else None

            fired = await eventually(stored, within=75)
            scan_id = run_scan_id(created.id, nominal)
            assert fired.last_scan_id == scan_id
            assert fired.last_run_at == nominal
            assert fired.last_outcome == "started"
            assert fired.next_run_at == nominal + timedelta(minutes=1)
            nc = await nats.connect(stack.settings.nats_url)
            try:
                cmd = await nc.jetstream().get_last_msg("COMMANDS", subjects.scan_start(scan_id))
            finally:
                await nc.drain()
            assert cmd.time is not None
            lag = (cmd.time - nominal).total_seconds()
            assert 0 <= lag < 2, f"the start command was stored {lag:.3f}s after {nominal}"
            scan = await wait_status(scans, scan_id, TERMINAL)
            assert scan.schedule_id == created.id and scan.trigger == "schedule"
            listed = await scans.list_scans(v1.ListScansRequest(schedule_id=created.id))
            assert [s.id for s in listed.scans] == [scan_id]
            runs = await runs_of(schedules, created.id)
            assert (runs[0].nominal_time, runs[0].outcome, runs[0].scan_id) == (
                nominal,
                "started",
                scan_id,
            )
            assert runs[0].trigger == "schedule"
        finally:
            await schedules.delete_schedule(v1.DeleteScheduleRequest(id=created.id))


@contextlib.asynccontextmanager
async def scheduler_at(stack: Stack, offset: float, scope: str = "") -> AsyncIterator[None]:
    """The stack's scheduler replaced, for the block, by one whose clock runs `offset`
    seconds ahead of the database's (one that was down while that time passed)."""
    from workers.roles import supervise

    changes: dict[str, Any] = {"scheduler_clock_offset": offset}
    if scope:
        changes["scope"] = scope
    settings = msgspec.structs.replace(stack.settings, **changes)
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(settings, ["scheduler"], stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def stored_ids(conn: asyncpg.Connection, ids: list[str]) -> bool:
    n = await conn.fetchval("SELECT count(*) FROM schedules WHERE id = ANY($1::text[])", ids)
    return bool(n == len(ids))


@pytest.mark.timeout(120)
async def test_outages_pauses_overlaps_and_scope_changes_are_recorded(
    stack: Stack, open_port: int
) -> None:
    conn = await asyncpg.connect(stack.settings.database_url)
    await stack.stop_role("scheduler")
    created: list[str] = []
    slow_scan = ""
    try:
        async with schedule_service(stack) as schedules, scan_service(stack) as scans:
            since = float(
                await conn.fetchval(
                    "SELECT extract(epoch FROM now() - date_trunc('minute', now()))"
                )
            )
            # About two minutes behind, 59 s before a minute boundary: nothing becomes due
            # while the schedules are created.
            async with scheduler_at(stack, -since - 119):
                make = {
                    "inside": nmap_schedule(open_port),
                    "beyond": nmap_schedule(open_port, catchup_window_seconds=20),
                    "paused": nmap_schedule(open_port, paused=True, pause_note="maintenance"),
                    "overlap": nmap_schedule("1-3", config={"timing": 0}),
                    "replace": nmap_schedule(
                        open_port, overlap="replace", config={"timing": 0, "ports": "1-3"}
                    ),
                    "scope": nmap_schedule(open_port, target="127.0.0.2"),
                }
                ids = {}
                for name, schedule in make.items():
                    made = await schedules.create_schedule(
                        v1.CreateScheduleRequest(schedule=schedule)
                    )
                    ids[name] = made.id
                    created.append(made.id)
                await eventually(lambda: stored_ids(conn, created))
                # Run-now ignores a pause, and gives the overlap schedule a running scan.
                manual = await schedules.run_schedule_now(
                    v1.RunScheduleNowRequest(id=ids["paused"])
                )
                assert manual.trigger == "manual" and manual.schedule_id == ids["paused"]
                slow = await schedules.run_schedule_now(v1.RunScheduleNowRequest(id=ids["overlap"]))
                slow_scan = slow.id
                replaced = await schedules.run_schedule_now(
                    v1.RunScheduleNowRequest(id=ids["replace"])
                )
                await wait_status(scans, slow.id, {v1.ScanStatus.RUNNING})
                await wait_status(scans, replaced.id, {v1.ScanStatus.RUNNING})
                done = await wait_status(scans, manual.id, TERMINAL)
                assert done.trigger == "manual"
            first: datetime = await conn.fetchval(
                "SELECT next_fire_at FROM schedules WHERE id = $1", ids["inside"]
            )
            now: datetime = await conn.fetchval("SELECT now()")
            # Down across three nominal times: first, +1 min, +2 min; back at +2.5 min.
            offset = (first + timedelta(seconds=150) - now).total_seconds()
            async with scheduler_at(stack, offset, scope="localhost,127.0.0.1/32"):

                async def moved() -> bool:
                    n = await conn.fetchval(
                        "SELECT count(*) FROM schedules WHERE id = ANY($1::text[])"
                        " AND next_fire_at > $2",
                        created,
                        first + timedelta(minutes=2),
                    )
                    return bool(n == len(created))

                await eventually(moved)
            nominal = [first + timedelta(minutes=i) for i in range(3)]

            def outcomes(runs: list[v1.ScheduleRun]) -> list[tuple[datetime | None, str]]:
                return [(r.nominal_time, r.outcome) for r in runs if r.trigger == "schedule"]

            inside = await runs_of(schedules, ids["inside"])
            assert outcomes(inside) == [
                (nominal[0], "missed"),
                (nominal[1], "missed"),
                (nominal[2], "started"),
            ]
            assert "coalesced" in inside[0].reason
            first_page = await schedules.list_schedule_runs(
                v1.ListScheduleRunsRequest(schedule_id=ids["inside"], page_size=2)
            )
            rest = await schedules.list_schedule_runs(
                v1.ListScheduleRunsRequest(
                    schedule_id=ids["inside"], page_size=2, page_token=first_page.next_page_token
                )
            )
            assert [r.nominal_time for r in [*first_page.runs, *rest.runs]] == nominal[::-1]
            assert rest.next_page_token == ""
            catchup = inside[2].scan_id
            assert catchup == run_scan_id(ids["inside"], nominal[2])
            assert (await wait_status(scans, catchup, TERMINAL)).trigger == "schedule"

            beyond = await runs_of(schedules, ids["beyond"])
            assert outcomes(beyond) == [(t, "missed") for t in nominal]
            assert all(r.scan_id == "" for r in beyond)

            paused = await runs_of(schedules, ids["paused"])
            assert [(r.trigger, r.outcome) for r in paused if r.trigger == "manual"] == [
                ("manual", "started")
            ]
            assert outcomes(paused) == [(t, "skipped_paused") for t in nominal]

            overlap = await runs_of(schedules, ids["overlap"])
            assert outcomes(overlap) == [
                (nominal[0], "missed"),
                (nominal[1], "missed"),
                (nominal[2], "skipped_overlap"),
            ]
            assert slow_scan in overlap[-1].reason

            # replace: the running scan is cancelled and the new one started.
            replace = await runs_of(schedules, ids["replace"])
            assert outcomes(replace)[-1] == (nominal[2], "started")
            cancelled = await wait_status(scans, replaced.id, TERMINAL, within=30)
            assert cancelled.status == v1.ScanStatus.CANCELLED
            newer = await scans.get_scan(v1.GetScanRequest(id=replace[-1].scan_id))
            assert newer.trigger == "schedule" and newer.schedule_id == ids["replace"]
            await scans.cancel_scan(v1.CancelScanRequest(id=newer.id))

            scope = await runs_of(schedules, ids["scope"])
            assert outcomes(scope)[-1] == (nominal[2], "refused_scope")
            assert "outside the allowed scope" in scope[-1].reason

            view = await schedules.get_schedule(v1.GetScheduleRequest(id=ids["inside"]))
            assert view.last_outcome == "started" and view.last_scan_id == catchup
            # Resuming does not run the backlog: the next run is the next fire time.
            resumed = await schedules.resume_schedule(v1.ResumeScheduleRequest(id=ids["paused"]))
            assert not resumed.paused and resumed.enabled
            assert resumed.next_run_at is not None
            assert resumed.next_run_at > datetime.now(UTC)
            assert len(await runs_of(schedules, ids["paused"])) == 4
    finally:
        with contextlib.suppress(Exception):
            async with scan_service(stack) as scans:
                if slow_scan:
                    await scans.cancel_scan(v1.CancelScanRequest(id=slow_scan))
        await conn.execute("DELETE FROM schedules WHERE id = ANY($1::text[])", created)
        await conn.close()
        await stack.start_role("scheduler")
