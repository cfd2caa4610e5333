"""ReportService: GenerateReport becomes a `cmd.report.<id>.generate` command for the reports
role; GetReport and ListReports read through the queries service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from grpclib import GRPCError
from grpclib.const import Status

from contracts import reports, scans, subjects, wire
from contracts.gen.jetscan import v1
from edge import auth, convert, validate
from edge.bus import Bus
from edge.validate import require_id

_REPORT_IDS = uuid.UUID("0f6f9a53-8a43-4be4-9d3c-3c1f3f0e2a15")
MAX_SCANS = 100

FORMAT_FROM_PB = {
    v1.ReportFormat.PDF: reports.ReportFormat.PDF,
    v1.ReportFormat.JSON: reports.ReportFormat.JSON,
    v1.ReportFormat.SARIF: reports.ReportFormat.SARIF,
    v1.ReportFormat.DEFECTDOJO: reports.ReportFormat.DEFECTDOJO,
    v1.ReportFormat.CSV: reports.ReportFormat.CSV,
}
FORMAT_TO_PB = {v: k for k, v in FORMAT_FROM_PB.items()}
STATUS_TO_PB = {
    reports.ReportStatus.PENDING: v1.ReportStatus.PENDING,
    reports.ReportStatus.READY: v1.ReportStatus.READY,
    reports.ReportStatus.FAILED: v1.ReportStatus.FAILED,
}


def _name(field: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > 253 or any(c.isspace() or ord(c) < 32 for c in value):
        raise GRPCError(Status.INVALID_ARGUMENT, f"{field}: must be a name or address")
    return value


def report_to_pb(view: reports.ReportView, base_url: str) -> v1.Report:
    url = ""
    if view.status is reports.ReportStatus.READY and view.file:
        url = f"{base_url.rstrip('/')}/reports/{view.id}/{view.file}"
    return v1.Report(
        id=view.id,
        status=STATUS_TO_PB[view.status],
        format=FORMAT_TO_PB[view.format],
        scan_ids=list(view.scan_ids),
        domain=view.domain,
        created_at=view.created_at,
        ready_at=view.ready_at,
        size_bytes=view.size_bytes,
        sha256=view.sha256,
        download_url=url,
        error=view.error,
        target=view.target,
        schedule_id=view.schedule_id,
        snapshot_sha256=view.snapshot_sha256,
        file_name=view.file,
    )


def generate_command(
    message: v1.GenerateReportRequest, principal: auth.Principal, now: datetime
) -> reports.GenerateReport:
    """The command for a request, or INVALID_ARGUMENT naming the field."""
    request_id = validate.request_id(message.request_id)
    fmt = FORMAT_FROM_PB.get(message.format)
    if fmt is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "format: required (pdf, json, sarif, ...)")
    minimum = convert.severity_from_pb(message.min_severity)
    if minimum is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "min_severity: unknown value")
    scan_ids: tuple[str, ...] = ()
    domain = target = schedule_id = ""
    if message.scan_ids is not None:
        if not message.scan_ids.ids:
            raise GRPCError(Status.INVALID_ARGUMENT, "scan_ids: at least one scan id")
        if len(message.scan_ids.ids) > MAX_SCANS:
            raise GRPCError(Status.INVALID_ARGUMENT, f"scan_ids: at most {MAX_SCANS}")
        scan_ids = tuple(dict.fromkeys(require_id("scan_ids", s) for s in message.scan_ids.ids))
    elif message.domain is not None:
        domain = _name("domain", message.domain).lower().rstrip(".")
    elif message.target is not None:
        target = _name("target", message.target)
    elif message.schedule_id is not None:
        schedule_id = require_id("schedule_id", message.schedule_id)
    else:
        raise GRPCError(
            Status.INVALID_ARGUMENT, "subject: one of scan_ids, domain, target, schedule_id"
        )
    since = message.since
    if since is not None:
        if scan_ids or schedule_id:
            raise GRPCError(Status.INVALID_ARGUMENT, "since: only for a domain or target")
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    report_id = (
        uuid.uuid5(_REPORT_IDS, f"{principal.key}\x1f{request_id}").hex
        if request_id
        else uuid.uuid4().hex
    )
    return reports.GenerateReport(
        report_id=report_id,
        format=fmt,
        requested_by=principal.name,
        requested_at=now,
        scan_ids=scan_ids,
        domain=domain,
        target=target,
        schedule_id=schedule_id,
        options=reports.ReportOptions(
            min_severity=minimum, include_triaged=message.include_triaged, since=since
        ),
        request_id=request_id,
    )


class ReportService(v1.ReportServiceBase):
    def __init__(self, bus: Bus, base_url: str) -> None:
        self.bus = bus
        self.base_url = base_url

    async def _view(self, report_id: str) -> reports.ReportView:
        return await self.bus.query(
            subjects.query("report", "get"), reports.GetReport(id=report_id), reports.ReportView
        )

    async def generate_report(self, message: v1.GenerateReportRequest) -> v1.Report:
        cmd = generate_command(message, auth.current.get(), datetime.now(UTC))
        for scan_id in cmd.scan_ids:  # NOT_FOUND before anything is published
            await self.bus.query(subjects.query("scan", "get"), scans.GetScan(id=scan_id), dict)
        duplicate = await self.bus.command(
            subjects.report_generate(cmd.report_id),
            wire.encode(cmd),
            subjects.msg_id("report", cmd.report_id, "generate"),
        )
        if duplicate:
            # The same request_id was accepted before: that report as it is now.
            return report_to_pb(await self._view(cmd.report_id), self.base_url)
        return report_to_pb(reports.pending(cmd), self.base_url)

    async def get_report(self, message: v1.GetReportRequest) -> v1.Report:
        view = await self._view(require_id("id", message.id))
        return report_to_pb(view, self.base_url)

    async def list_reports(self, message: v1.ListReportsRequest) -> v1.ListReportsResponse:
        if message.page_size < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, "page_size: must not be negative")
        fmt = None
        if message.format != v1.ReportFormat.UNSPECIFIED:
            fmt = FORMAT_FROM_PB.get(message.format)
            if fmt is None:
                raise GRPCError(Status.INVALID_ARGUMENT, "format: unknown value")
        page = await self.bus.query(
            subjects.query("report", "list"),
            reports.ListReports(
                domain=message.domain,
                scan_id=require_id("scan_id", message.scan_id) if message.scan_id else "",
                format=fmt,
                page_size=message.page_size,
                page_token=message.page_token,
            ),
            reports.ReportPage,
        )
        return v1.ListReportsResponse(
            reports=[report_to_pb(r, self.base_url) for r in page.reports],
            next_page_token=page.next_page_token,
        )
