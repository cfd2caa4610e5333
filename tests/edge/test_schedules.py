"""ScheduleService on the real stack: refusals (nothing stored), preview, idempotent create,
update by field mask, pause and resume, list filters and paging."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats
import pytest
from grpclib import GRPCError
from grpclib.const import Status

from contracts.gen.google.protobuf import FieldMask, Struct
from contracts.gen.jetscan import v1
from tests.conftest import Stack
from tests.handlers.test_scheduler import eventually, schedule_service

pytestmark = pytest.mark.slow


def schedule(**fields: Any) -> v1.Schedule:
    base: dict[str, Any] = {
        "target": "127.0.0.1",
        "tool": "nmap",
        "config": Struct.from_dict({"ports": "1"}),
        "cron": "0 3 * * *",
    }
    base.update(fields)
    return v1.Schedule(**base)


INVALID = Status.INVALID_ARGUMENT
DENIED = Status.PERMISSION_DENIED
# (schedule fields, request_id, status, the field the message names)
REFUSED: list[tuple[dict[str, Any], str, Status, str]] = [
    ({"cron": ""}, "", INVALID, "schedule.cron: required"),
    ({"cron": "0 3 * * * *"}, "", INVALID, "schedule.cron: six fields"),
    ({"cron": "@reboot"}, "", INVALID, "schedule.cron"),
    ({"cron": "@every 1h"}, "", INVALID, "schedule.cron"),
    ({"cron": "0 0 30 2 *"}, "", INVALID, "schedule.cron: '0 0 30 2 *' never fires"),
    ({"cron": "60 * * * *"}, "", INVALID, "schedule.cron: minute field"),
    ({"cron": "0 0 * * 8"}, "", INVALID, "schedule.cron: day of week field"),
    ({"cron": "*/0 * * * *"}, "", INVALID, "schedule.cron: minute field: step 0"),
    ({"cron": "0 0 L * *"}, "", INVALID, "schedule.cron: day of month field"),
    ({"cron": "0 0 ? * *"}, "", INVALID, "schedule.cron"),
    ({"cron": "0 3 * *"}, "", INVALID, "schedule.cron: expected five fields"),
    ({"timezone": "Mars/Olympus"}, "", INVALID, "schedule.timezone"),
    ({"timezone": "localtime"}, "", INVALID, "schedule.timezone"),
    ({"timezone": "Europe/Berlin "}, "", INVALID, "schedule.timezone"),
    ({"tool": "metasploit"}, "", INVALID, "schedule.tool: unknown tool"),
    ({"tool": ""}, "", INVALID, "schedule.tool"),
    ({"target": ""}, "", INVALID, "schedule.target"),
    ({"target": "http://127.0.0.1/"}, "", INVALID, "schedule.target"),
    ({"target": "127.0.0.1 ; rm -rf /"}, "", INVALID, "schedule.target"),
    ({"config": Struct.from_dict({"bogus": 1})}, "", INVALID, "schedule.config"),
    ({"config": Struct.from_dict({"ports": "x-y"})}, "", INVALID, "schedule.config.ports"),
    ({"deadline_seconds": 10**7}, "", INVALID, "schedule.deadline_seconds"),
    ({"overlap": "sometimes"}, "", INVALID, "schedule.overlap"),
    ({"catchup_window_seconds": -1}, "", INVALID, "schedule.catchup_window_seconds"),
    ({"catchup_window_seconds": 86401}, "", INVALID, "schedule.catchup_window_seconds"),
    ({"jitter_seconds": -5}, "", INVALID, "schedule.jitter_seconds"),
    ({"jitter_seconds": 86401}, "", INVALID, "schedule.jitter_seconds"),
    ({"pause_note": "x" * 501}, "", INVALID, "schedule.pause_note"),
    ({"pause_note": "bell\x07"}, "", INVALID, "schedule.pause_note"),
    ({}, "has a space", INVALID, "request_id"),
    ({"target": "10.0.0.1"}, "", DENIED, "outside the allowed scope"),
    ({"target": "192.168.0.0/24"}, "", DENIED, "outside the allowed scope"),
    ({"target": "example.com"}, "", DENIED, "outside the allowed scope"),
    ({"target": "::2"}, "", DENIED, "outside the allowed scope"),
]


async def schedule_commands(stack: Stack) -> int:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        info = await nc.jetstream().stream_info("COMMANDS", subjects_filter="cmd.schedule.>")
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.drain()


async def test_refused_schedules_name_the_field_and_store_nothing(stack: Stack) -> None:
    assert len(REFUSED) >= 25
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM schedules")
        commands = await schedule_commands(stack)
        async with schedule_service(stack) as schedules:
            for fields, rid, status, message in REFUSED:
                with pytest.raises(GRPCError) as err:
                    await schedules.create_schedule(
                        v1.CreateScheduleRequest(schedule=schedule(**fields), request_id=rid)
                    )
                assert err.value.status is status, (fields, err.value.message)
                assert message in (err.value.message or ""), (fields, err.value.message)
            with pytest.raises(GRPCError) as err:
                await schedules.create_schedule(v1.CreateScheduleRequest())
            assert err.value.status is INVALID and err.value.message == "schedule: required"
        await asyncio.sleep(0.5)
        assert await conn.fetchval("SELECT count(*) FROM schedules") == rows
        assert await schedule_commands(stack) == commands
    finally:
        await conn.close()


async def test_preview_shows_the_fire_times_the_scheduler_uses(stack: Stack) -> None:
    async with schedule_service(stack) as schedules:
        autumn = await schedules.preview_schedule(
            v1.PreviewScheduleRequest(
                cron="30 2 * * *",
                timezone="Europe/Berlin",
                after=datetime(2027, 10, 30, 12, tzinfo=UTC),
                count=2,
            )
        )
        assert autumn.fire_times == [
            datetime(2027, 10, 31, 0, 30, tzinfo=UTC),
            datetime(2027, 11, 1, 1, 30, tzinfo=UTC),
        ]
        default = await schedules.preview_schedule(v1.PreviewScheduleRequest(cron="@hourly"))
        assert len(default.fire_times) == 10
        assert default.fire_times[0] > datetime.now(UTC)
        assert (
            len(
                (
                    await schedules.preview_schedule(
                        v1.PreviewScheduleRequest(cron="* * * * *", count=100)
                    )
                ).fire_times
            )
            == 100
        )
        for request, field in [
            (v1.PreviewScheduleRequest(cron="* * * * * *"), "cron: six fields"),
            (v1.PreviewScheduleRequest(cron="0 0 30 2 *"), "cron: "),
            (v1.PreviewScheduleRequest(cron="@daily", timezone="Nowhere"), "timezone: "),
            (v1.PreviewScheduleRequest(cron="@daily", count=101), "count: "),
            (v1.PreviewScheduleRequest(cron="@daily", count=-1), "count: "),
        ]:
            with pytest.raises(GRPCError) as err:
                await schedules.preview_schedule(request)
            assert err.value.status is INVALID
            assert (err.value.message or "").startswith(field)


async def test_create_is_idempotent_update_pause_resume_list_and_delete(stack: Stack) -> None:
    async with schedule_service(stack) as schedules:
        req = v1.CreateScheduleRequest(
            schedule=schedule(timezone="Europe/Berlin", jitter_seconds=60, tool="nmap"),
            request_id=f"idem-{datetime.now(UTC).timestamp()}",
        )
        first, second = await asyncio.gather(
            schedules.create_schedule(req), schedules.create_schedule(req)
        )
        assert first.id == second.id
        assert first.overlap == "skip" and first.catchup_window_seconds == 3600
        assert first.enabled and not first.paused and first.domain
        # 03:00 in Berlin is 01:00 or 02:00 UTC.
        assert first.next_run_at is not None and first.next_run_at.hour in (1, 2)

        async def stored() -> v1.Schedule | None:
            try:
                return await schedules.get_schedule(v1.GetScheduleRequest(id=first.id))
            except GRPCError:
                return None

        got = await eventually(stored)
        assert got.cron == "0 3 * * *" and got.timezone == "Europe/Berlin"
        assert got.next_run_at == first.next_run_at

        updated = await schedules.update_schedule(
            v1.UpdateScheduleRequest(
                schedule=v1.Schedule(id=first.id, cron="15 4 * * *", overlap="allow"),
                update_mask=FieldMask(paths=["cron", "overlap"]),
            )
        )
        assert (updated.cron, updated.overlap, updated.timezone) == (
            "15 4 * * *",
            "allow",
            "Europe/Berlin",
        )

        async def applied() -> bool:
            s = await schedules.get_schedule(v1.GetScheduleRequest(id=first.id))
            return s.cron == "15 4 * * *" and s.next_run_at == updated.next_run_at

        await eventually(applied)
        for bad, field in [
            (FieldMask(paths=["next_run_at"]), "update_mask"),
            (FieldMask(paths=["cron"]), "schedule.cron"),
        ]:
            with pytest.raises(GRPCError) as err:
                await schedules.update_schedule(
                    v1.UpdateScheduleRequest(
                        schedule=v1.Schedule(id=first.id, cron="61 * * * *"), update_mask=bad
                    )
                )
            assert err.value.status is INVALID and (err.value.message or "").startswith(field)
        with pytest.raises(GRPCError) as err:
            await schedules.update_schedule(
                v1.UpdateScheduleRequest(
                    schedule=v1.Schedule(id=first.id, target="10.1.1.1"),
                    update_mask=FieldMask(paths=["target"]),
                )
            )
        assert err.value.status is DENIED

        paused = await schedules.pause_schedule(
            v1.PauseScheduleRequest(id=first.id, note="firewall change")
        )
        assert paused.paused and not paused.enabled and paused.pause_note == "firewall change"

        async def listed_paused() -> bool:
            page = await schedules.list_schedules(
                v1.ListSchedulesRequest(paused=True, tool="nmap", page_size=1000)
            )
            return first.id in [s.id for s in page.schedules]

        await eventually(listed_paused)
        running = await schedules.list_schedules(
            v1.ListSchedulesRequest(paused=False, page_size=1000)
        )
        assert first.id not in [s.id for s in running.schedules]
        resumed = await schedules.resume_schedule(v1.ResumeScheduleRequest(id=first.id))
        assert not resumed.paused and resumed.pause_note == ""

        await schedules.delete_schedule(v1.DeleteScheduleRequest(id=first.id))

        async def gone() -> bool:
            try:
                await schedules.get_schedule(v1.GetScheduleRequest(id=first.id))
            except GRPCError as exc:
                return exc.status is Status.NOT_FOUND
            return False

        await eventually(gone)
        for call in (
            schedules.run_schedule_now(v1.RunScheduleNowRequest(id=first.id)),
            schedules.pause_schedule(v1.PauseScheduleRequest(id=first.id)),
            schedules.list_schedule_runs(v1.ListScheduleRunsRequest(schedule_id=first.id)),
        ):
            with pytest.raises(GRPCError) as err:
                await call
            assert err.value.status is Status.NOT_FOUND


async def test_listing_pages_through_schedules(stack: Stack) -> None:
    async with schedule_service(stack) as schedules:
        target = "127.0.0.9"
        made = [
            (
                await schedules.create_schedule(
                    v1.CreateScheduleRequest(schedule=schedule(target=target))
                )
            ).id
            for _ in range(5)
        ]

        async def all_stored() -> bool:
            page = await schedules.list_schedules(v1.ListSchedulesRequest(target=target))
            return len(page.schedules) == 5

        await eventually(all_stored)
        seen: list[str] = []
        token = ""
        while True:
            page = await schedules.list_schedules(
                v1.ListSchedulesRequest(target=target, page_size=2, page_token=token)
            )
            seen += [s.id for s in page.schedules]
            if not (token := page.next_page_token):
                break
        assert sorted(seen) == sorted(made)
        with pytest.raises(GRPCError) as err:
            await schedules.list_schedules(
                v1.ListSchedulesRequest(target="127.0.0.8", page_token=page.next_page_token or "x")
            )
        assert err.value.status is INVALID
        for schedule_id in made:
            await schedules.delete_schedule(v1.DeleteScheduleRequest(id=schedule_id))
