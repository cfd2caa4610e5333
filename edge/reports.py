"""ReportService: declared in the API, built by a later issue."""

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
