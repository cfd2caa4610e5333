"""Schedule reads: `query.schedule.get`, `query.schedule.list`, `query.schedule.runs`."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from nats.js.errors import NotFoundError
from nats.micro.request import Request

from contracts import cron, schedules, subjects
from handlers import schedules as rows
from handlers.queries import paging
from handlers.queries.router import Queries, QueryError, _answer, _decode, _window

_upsert = msgspec.json.Decoder(schedules.UpsertSchedule)


class ScheduleQueries(Queries):
    async def _accepted(self, schedule_id: str) -> schedules.ScheduleView | None:
        """A schedule created on the bus that the scheduler has not stored yet."""
        try:
            raw = await self.js.get_last_msg("COMMANDS", subjects.schedule_upsert(schedule_id))
        except NotFoundError:
            return None
        try:
            await self.js.get_last_msg("COMMANDS", subjects.schedule_delete(schedule_id))
            return None
        except NotFoundError:
            pass
        cmd = _upsert.decode(raw.data or b"")
        c = cron.parse(cmd.spec.cron, cmd.spec.timezone)
        return schedules.ScheduleView(
            id=cmd.schedule_id,
            spec=cmd.spec,
            created_at=cmd.requested_at,
            updated_at=cmd.requested_at,
            created_by=cmd.requested_by,
            next_run_at=cron.next_fire(c, datetime.now(UTC)),
        )

    async def get_schedule(self, req: Request) -> None:
        async def work() -> schedules.ScheduleView:
            q = _decode(req.data, schedules.GetSchedule)
            view = await rows.get(self.pool, q.id) or await self._accepted(q.id)
            if view is None:
                raise QueryError(404, f"schedule {q.id!r} not found")
            return view

        await _answer(req, work)

    async def list_schedules(self, req: Request) -> None:
        async def work() -> schedules.SchedulePage:
            q = _decode(req.data, schedules.ListSchedules)
            fhash = paging.filter_hash("schedules", q.target, q.domain, q.tool, q.paused)
            size, after = _window(q.page_size, q.page_token, fhash, datetime, str)
            found, token = paging.trim(
                await rows.list_schedules(self.pool, q, size + 1, after),
                size,
                fhash,
                lambda s: (s.created_at, s.id),
            )
            return schedules.SchedulePage(schedules=found, next_page_token=token)

        await _answer(req, work)

    async def list_schedule_runs(self, req: Request) -> None:
        async def work() -> schedules.RunPage:
            q = _decode(req.data, schedules.ListRuns)
            fhash = paging.filter_hash("runs", q.schedule_id)
            size, after = _window(q.page_size, q.page_token, fhash, datetime)
            if await rows.get(self.pool, q.schedule_id) is None:
                raise QueryError(404, f"schedule {q.schedule_id!r} not found")
            found, token = paging.trim(
                await rows.list_runs(
                    self.pool, q.schedule_id, size + 1, after[0] if after else None
                ),
                size,
                fhash,
                lambda r: (r.nominal_time,),
            )
            return schedules.RunPage(runs=found, next_page_token=token)

        await _answer(req, work)
