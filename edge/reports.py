"""ReportService and ScheduleService: declared in the API, built by later issues."""

from __future__ import annotations

from contracts.gen.jetscan import v1
from edge.scans import unimplemented


class ReportService(v1.ReportServiceBase):
    async def generate_report(self, message: v1.GenerateReportRequest) -> v1.Report:
        raise unimplemented("jetscan.v1.ReportService/GenerateReport")

    async def get_report(self, message: v1.GetReportRequest) -> v1.Report:
        raise unimplemented("jetscan.v1.ReportService/GetReport")

    async def list_reports(self, message: v1.ListReportsRequest) -> v1.ListReportsResponse:
        raise unimplemented("jetscan.v1.ReportService/ListReports")


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
