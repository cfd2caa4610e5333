"""Report commands, events and query shapes."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class ReportFormat(enum.StrEnum):
    PDF = "pdf"
    JSON = "json"


class ReportStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class GenerateReport(msgspec.Struct, frozen=True, kw_only=True, tag="report.generate"):
    """`cmd.report.<id>.generate`: render the findings of `scan_ids`, or of a domain."""

    report_id: str
    format: ReportFormat
    requested_by: str
    requested_at: datetime
    scan_ids: tuple[str, ...] = ()
    domain: str = ""
    request_id: str = ""


class ReportEvent(msgspec.Struct, frozen=True, kw_only=True):
    """`evt.report.<id>.<ready|failed>`; a ready report names its object-store key."""

    report_id: str
    status: ReportStatus
    at: datetime
    object_name: str = ""
    size_bytes: int = 0
    sha256: str = ""
    error: str = ""


class ReportView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: ReportStatus
    format: ReportFormat
    created_at: datetime
    scan_ids: tuple[str, ...] = ()
    domain: str = ""
    ready_at: datetime | None = None
    size_bytes: int = 0
    sha256: str = ""
    error: str = ""


class GetReport(msgspec.Struct, frozen=True, kw_only=True):
    """`query.report.get`."""

    id: str


class ListReports(msgspec.Struct, frozen=True, kw_only=True):
    """`query.report.list`."""

    domain: str = ""
    page_size: int = 50
    page_token: str = ""


class ReportPage(msgspec.Struct, frozen=True, kw_only=True):
    reports: list[ReportView]
    next_page_token: str = ""
