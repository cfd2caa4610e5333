"""ScheduleService: declared in the API, built by a later issue (ReportService: edge.reporting)."""

from __future__ import annotations

from contracts.gen.jetscan import v1
from edge.scans import unimplemented


class ScheduleService(v1.ScheduleServiceBase):
    async def create_schedule(self, message: v1.CreateScheduleRequest) -> v1.Schedule:
        raise unimplemented("jetscan.v1.ScheduleService/CreateSchedule")

    async def update_schedule(self, message: v1.UpdateScheduleRequest) -> v1.Schedule:
        raise unimplemented("jetscan.v1.ScheduleService/UpdateSchedule")

    async def delete_schedule(self, message: v1.DeleteScheduleRequest) -> v1.DeleteScheduleResponse:
        raise unimplemented("jetscan.v1.ScheduleService/DeleteSchedule")

    async def get_schedule(self, message: v1.GetScheduleRequest) -> v1.Schedule:
        raise unimplemented("jetscan.v1.ScheduleService/GetSchedule")

    async def list_schedules(self, message: v1.ListSchedulesRequest) -> v1.ListSchedulesResponse:
        raise unimplemented("jetscan.v1.ScheduleService/ListSchedules")
