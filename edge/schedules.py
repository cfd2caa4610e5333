"""ScheduleService: validated in full here, then a command on COMMANDS; reads are queries.

Nothing is published unless all of a request passes: the cron expression and zone by
`contracts.cron` (the scheduler's own function), target, tool, config and scope by
`scanners.requests` (StartScan's own checks).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from grpclib import GRPCError
from grpclib.const import Status

from contracts import cron, scans, schedules, subjects, wire
from contracts.gen.jetscan import v1
from edge import auth, convert
from edge.bus import Bus
from edge.validate import invalid, request_id, require_id
from scanners import requests
from scanners.errors import ConfigError, OutOfScope, RequestError, TargetError, Unsupported
from scanners.requests import Capabilities
from scanners.scope import Scope

MAX_NOTE = 500
MAX_PREVIEW = 100
DEFAULT_PREVIEW = 10
# What UpdateSchedule's field mask may name.
WRITABLE = (
    "target",
    "tool",
    "config",
    "cron",
    "timezone",
    "overlap",
    "catchup_window_seconds",
    "jitter_seconds",
    "paused",
    "pause_note",
    "deadline_seconds",
)
_SCHEDULE_IDS = uuid.UUID("6a657473-6361-6e2d-7363-686564756c73")


def parse_cron(expr: str, zone: str, prefix: str = "") -> cron.Cron:
    try:
        return cron.parse(expr, zone)
    except cron.CronError as exc:
        raise invalid(prefix + exc.field, exc.reason) from None


def _note(field: str, text: str) -> str:
    if len(text) > MAX_NOTE or not text.isprintable():
        raise invalid(field, f"at most {MAX_NOTE} printable characters")
    return text


def spec_from_pb(
    s: v1.Schedule, scope: Scope, capabilities: Capabilities
) -> schedules.ScheduleSpec:
    """A schedule as the scheduler stores it, or INVALID_ARGUMENT / PERMISSION_DENIED."""
    parse_cron(s.cron, s.timezone, "schedule.")
    overlap = s.overlap or "skip"
    if overlap not in schedules.OVERLAP_POLICIES:
        raise invalid(
            "schedule.overlap", f"expected one of {', '.join(schedules.OVERLAP_POLICIES)}"
        )
    window = s.catchup_window_seconds or schedules.DEFAULT_CATCHUP_SECONDS
    if not 0 < window <= schedules.MAX_CATCHUP_SECONDS:
        raise invalid(
            "schedule.catchup_window_seconds",
            f"between 1 and {schedules.MAX_CATCHUP_SECONDS} (0 means 3600)",
        )
    if not 0 <= s.jitter_seconds <= schedules.MAX_JITTER_SECONDS:
        raise invalid("schedule.jitter_seconds", f"between 0 and {schedules.MAX_JITTER_SECONDS}")
    try:
        valid = requests.validate_start(
            s.tool,
            s.target,
            convert.struct_to_dict(s.config),
            s.deadline_seconds,
            scope,
            capabilities=capabilities,
        )
    except OutOfScope as exc:
        raise GRPCError(Status.PERMISSION_DENIED, f"schedule.{exc}") from None
    except Unsupported as exc:
        raise GRPCError(Status.FAILED_PRECONDITION, f"schedule.{exc}") from None
    except (RequestError, TargetError, ConfigError) as exc:
        raise invalid(f"schedule.{exc.field}", exc.reason) from None
    return schedules.ScheduleSpec(
        target=valid.target.value,
        domain=valid.target.domain,
        tool=valid.tool,
        config=valid.config,
        deadline_seconds=valid.deadline_seconds,
        cron=s.cron.strip(),
        timezone="" if s.timezone in ("", "UTC") else s.timezone,
        overlap=overlap,
        catchup_window_seconds=window,
        jitter_seconds=s.jitter_seconds,
        paused=s.paused,
        pause_note=_note("schedule.pause_note", s.pause_note),
    )


def _next_run(spec: schedules.ScheduleSpec) -> datetime:
    return cron.next_fire(cron.parse(spec.cron, spec.timezone), datetime.now(UTC))


class ScheduleService(v1.ScheduleServiceBase):
    def __init__(self, bus: Bus, scope: Scope, capabilities: Capabilities) -> None:
        self.bus = bus
        self.scope = scope
        self.capabilities = capabilities

    async def _publish(self, subject: str, command: Any, msg_id: str) -> bool:
        return await self.bus.command(subject, wire.encode(command), msg_id)

    async def _view(self, schedule_id: str) -> schedules.ScheduleView:
        return await self.bus.query(
            subjects.query("schedule", "get"),
            schedules.GetSchedule(id=schedule_id),
            schedules.ScheduleView,
        )

    async def _replace(
        self, view: schedules.ScheduleView, spec: schedules.ScheduleSpec
    ) -> v1.Schedule:
        cmd = schedules.UpsertSchedule(
            schedule_id=view.id,
            spec=spec,
            create=False,
            requested_by=auth.current.get().name,
            requested_at=datetime.now(UTC),
        )
        await self._publish(
            subjects.schedule_upsert(view.id),
            cmd,
            subjects.msg_id("schedule", view.id, f"update-{uuid.uuid4().hex}"),
        )
        next_run = _next_run(spec) if schedules.retimes(view.spec, spec) else view.next_run_at
        return convert.schedule_to_pb(
            msgspec.structs.replace(
                view, spec=spec, updated_at=cmd.requested_at, next_run_at=next_run
            )
        )

    async def create_schedule(self, message: v1.CreateScheduleRequest) -> v1.Schedule:
        principal = auth.current.get()
        rid = request_id(message.request_id)
        if message.schedule is None:
            raise invalid("schedule", "required")
        spec = spec_from_pb(message.schedule, self.scope, self.capabilities)
        schedule_id = (
            uuid.uuid5(_SCHEDULE_IDS, f"{principal.key}\x1f{rid}").hex if rid else uuid.uuid4().hex
        )
        now = datetime.now(UTC)
        cmd = schedules.UpsertSchedule(
            schedule_id=schedule_id,
            spec=spec,
            create=True,
            requested_by=principal.name,
            requested_at=now,
            request_id=rid,
        )
        duplicate = await self._publish(
            subjects.schedule_upsert(schedule_id),
            cmd,
            subjects.msg_id("schedule", schedule_id, "create"),
        )
        if duplicate:
            return convert.schedule_to_pb(await self._view(schedule_id))
        return convert.schedule_to_pb(
            schedules.ScheduleView(
                id=schedule_id,
                spec=spec,
                created_at=now,
                updated_at=now,
                created_by=principal.name,
                next_run_at=_next_run(spec),
            )
        )

    async def update_schedule(self, message: v1.UpdateScheduleRequest) -> v1.Schedule:
        if message.schedule is None:
            raise invalid("schedule", "required")
        view = await self._view(require_id("schedule.id", message.schedule.id))
        paths = list(message.update_mask.paths) if message.update_mask else []
        for path in paths:
            if path not in WRITABLE:
                raise invalid("update_mask", f"{path!r} is not a writable field of Schedule")
        merged = convert.schedule_to_pb(view)
        for path in paths or WRITABLE:
            setattr(merged, path, getattr(message.schedule, path))
        return await self._replace(view, spec_from_pb(merged, self.scope, self.capabilities))

    async def delete_schedule(self, message: v1.DeleteScheduleRequest) -> v1.DeleteScheduleResponse:
        view = await self._view(require_id("id", message.id))
        cmd = schedules.DeleteSchedule(
            schedule_id=view.id,
            requested_by=auth.current.get().name,
            requested_at=datetime.now(UTC),
        )
        await self._publish(
            subjects.schedule_delete(view.id), cmd, subjects.msg_id("schedule", view.id, "delete")
        )
        return v1.DeleteScheduleResponse()

    async def get_schedule(self, message: v1.GetScheduleRequest) -> v1.Schedule:
        return convert.schedule_to_pb(await self._view(require_id("id", message.id)))

    async def list_schedules(self, message: v1.ListSchedulesRequest) -> v1.ListSchedulesResponse:
        if message.page_size < 0:
            raise invalid("page_size", "must not be negative")
        page = await self.bus.query(
            subjects.query("schedule", "list"),
            schedules.ListSchedules(
                target=message.target,
                domain=message.domain,
                tool=message.tool,
                paused=message.paused,
                page_size=message.page_size,
                page_token=message.page_token,
            ),
            schedules.SchedulePage,
        )
        return v1.ListSchedulesResponse(
            schedules=[convert.schedule_to_pb(s) for s in page.schedules],
            next_page_token=page.next_page_token,
        )

    async def preview_schedule(
        self, message: v1.PreviewScheduleRequest
    ) -> v1.PreviewScheduleResponse:
        c = parse_cron(message.cron, message.timezone)
        count = message.count or DEFAULT_PREVIEW
        if not 0 < count <= MAX_PREVIEW:
            raise invalid("count", f"between 1 and {MAX_PREVIEW} (0 means {DEFAULT_PREVIEW})")
        after = message.after or datetime.now(UTC)
        return v1.PreviewScheduleResponse(fire_times=cron.fire_times(c, after, count))

    async def run_schedule_now(self, message: v1.RunScheduleNowRequest) -> v1.Scan:
        view = await self._view(require_id("id", message.id))
        s = view.spec
        try:
            requests.validate_start(
                s.tool,
                s.target,
                s.config,
                s.deadline_seconds,
                self.scope,
                capabilities=self.capabilities,
            )
        except OutOfScope as exc:
            raise GRPCError(Status.PERMISSION_DENIED, str(exc)) from None
        except (RequestError, TargetError, ConfigError, Unsupported) as exc:
            raise GRPCError(Status.FAILED_PRECONDITION, f"the schedule cannot run: {exc}") from None
        now = datetime.now(UTC)
        cmd = schedules.RunSchedule(
            schedule_id=view.id,
            nominal_time=now,
            requested_by=auth.current.get().name,
            requested_at=now,
        )
        await self._publish(
            subjects.schedule_run(view.id),
            cmd,
            subjects.msg_id("schedule", view.id, f"run-{now.isoformat()}"),
        )
        # Published here too (the scheduler's copy carries the same Nats-Msg-Id), so the
        # scan is readable as soon as this returns, as after StartScan.
        start = schedules.run_command(view, now, "manual")
        await self._publish(
            subjects.scan_start(start.scan_id),
            start,
            subjects.msg_id("scan", start.scan_id, "start"),
        )
        return convert.scan_to_pb(scans.queued(start))

    async def list_schedule_runs(
        self, message: v1.ListScheduleRunsRequest
    ) -> v1.ListScheduleRunsResponse:
        schedule_id = require_id("schedule_id", message.schedule_id)
        if message.page_size < 0:
            raise invalid("page_size", "must not be negative")
        page = await self.bus.query(
            subjects.query("schedule", "runs"),
            schedules.ListRuns(
                schedule_id=schedule_id,
                page_size=message.page_size,
                page_token=message.page_token,
            ),
            schedules.RunPage,
        )
        return v1.ListScheduleRunsResponse(
            runs=[convert.run_to_pb(r) for r in page.runs], next_page_token=page.next_page_token
        )

    async def pause_schedule(self, message: v1.PauseScheduleRequest) -> v1.Schedule:
        view = await self._view(require_id("id", message.id))
        note = _note("note", message.note)
        spec = msgspec.structs.replace(view.spec, paused=True, pause_note=note)
        return await self._replace(view, spec)

    async def resume_schedule(self, message: v1.ResumeScheduleRequest) -> v1.Schedule:
        view = await self._view(require_id("id", message.id))
        spec = msgspec.structs.replace(view.spec, paused=False, pause_note="")
        return await self._replace(view, spec)
