"""GenerateReport's validation and report ids, as pure functions of the request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from contracts.auth import Role
from contracts.findings import Severity
from contracts.gen.jetscan import v1
from contracts.reports import ReportFormat, ReportStatus, ReportView
from edge.auth import Principal
from edge.reporting import generate_command, report_to_pb

NOW = datetime(2026, 12, 2, tzinfo=UTC)
ALICE = Principal("alice", Role.OPERATOR, "k1")
PDF = v1.ReportFormat.PDF


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (v1.GenerateReportRequest(domain="example.com"), "format"),
        (v1.GenerateReportRequest(format=PDF), "subject"),
        (v1.GenerateReportRequest(format=PDF, scan_ids=v1.ScanIds(ids=[])), "scan_ids"),
        (v1.GenerateReportRequest(format=PDF, scan_ids=v1.ScanIds(ids=["a.*"])), "scan_ids"),
        (v1.GenerateReportRequest(format=PDF, scan_ids=v1.ScanIds(ids=["x"] * 101)), "scan_ids"),
        (v1.GenerateReportRequest(format=PDF, domain=" "), "domain"),
        (v1.GenerateReportRequest(format=PDF, target="a b"), "target"),
        (v1.GenerateReportRequest(format=PDF, schedule_id="s>"), "schedule_id"),
        (
            v1.GenerateReportRequest(
                format=PDF, scan_ids=v1.ScanIds(ids=["x"]), since=datetime(2026, 1, 1, tzinfo=UTC)
            ),
            "since",
        ),
        (v1.GenerateReportRequest(format=PDF, domain="a.b", request_id="has space"), "request_id"),
        (v1.GenerateReportRequest(format=v1.ReportFormat(99), domain="a.b"), "format"),
    ],
)
def test_bad_requests_name_their_field(request_: v1.GenerateReportRequest, field: str) -> None:
    with pytest.raises(GRPCError) as err:
        generate_command(request_, ALICE, NOW)
    assert err.value.status == Status.INVALID_ARGUMENT
    assert (err.value.message or "").startswith(field), err.value.message


def test_a_request_id_names_the_same_report_for_the_same_caller() -> None:
    request = v1.GenerateReportRequest(
        format=v1.ReportFormat.SARIF,
        domain="Example.COM.",
        request_id="r1",
        min_severity=v1.Severity.HIGH,
    )
    a = generate_command(request, ALICE, NOW)
    assert a == generate_command(request, ALICE, NOW)
    assert (
        a.report_id != generate_command(request, Principal("bob", Role.ADMIN, "k2"), NOW).report_id
    )
    assert (a.domain, a.format, a.options.min_severity) == (
        "example.com",
        ReportFormat.SARIF,
        Severity.HIGH,
    )
    unnamed = v1.GenerateReportRequest(format=PDF, schedule_id="nightly")
    assert generate_command(unnamed, ALICE, NOW).report_id != (
        generate_command(unnamed, ALICE, NOW).report_id
    )


def test_only_a_ready_report_has_a_download_url() -> None:
    view = ReportView(
        id="r1",
        status=ReportStatus.PENDING,
        format=ReportFormat.CSV,
        created_at=NOW,
        file="report.csv",
    )
    assert report_to_pb(view, "https://scan.example/").download_url == ""
    ready = ReportView(
        id="r1",
        status=ReportStatus.READY,
        format=ReportFormat.CSV,
        created_at=NOW,
        file="report.csv",
    )
    pb = report_to_pb(ready, "https://scan.example/")
    assert pb.download_url == "https://scan.example/reports/r1/report.csv"
    assert pb.format == v1.ReportFormat.CSV and pb.file_name == "report.csv"
