"""The plain-text views of scans and findings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from workers import tables


def test_table_aligns_columns_and_strips_trailing_space() -> None:
    assert tables.table(["A", "LONGER"], [["xyz", "1"], ["q", ""]]) == "A    LONGER\nxyz  1\nq\n"


def test_timestamps_are_utc_to_the_second() -> None:
    local = datetime(2026, 1, 2, 5, 4, 5, 999, tzinfo=timezone(timedelta(hours=2)))
    assert tables.timestamp(local) == "2026-01-02T03:04:05Z"
    assert tables.timestamp(None) == "-"


def test_unknown_enum_values_show_as_numbers() -> None:
    assert tables.status_name(v1.ScanStatus.TIMED_OUT) == "timed_out"
    assert tables.status_name(42) == "42"  # type: ignore[arg-type]


def test_finding_rows() -> None:
    findings = [
        v1.Finding(
            severity=v1.Severity.HIGH,
            title="Old TLS",
            host="h",
            port=443,
            protocol="tcp",
            fingerprint="0123456789abcdef",
        ),
        v1.Finding(severity=v1.Severity.INFO, title="Domain", fingerprint="ff"),
    ]
    headers, rows = tables.finding_rows(findings)
    assert headers == tables.FINDING_HEADERS
    assert rows == [
        ["high", "Old TLS", "h", "443/tcp", "0123456789ab"],
        ["info", "Domain", "-", "-", "ff"],
    ]


def test_scan_details_show_config_as_given() -> None:
    scan = v1.Scan(
        id="s1",
        target="127.0.0.1",
        tool="nmap",
        status=v1.ScanStatus.FAILED,
        config=Struct.from_dict({"timing": 4, "ports": "22"}),
        exit_code=2,
        error="nmap exited 2",
    )
    fields = dict(line.split(None, 1) for line in tables.scan_details(scan).splitlines()[:6])
    assert fields["status"] == "failed"
    assert fields["config"] == '{"ports":"22","timing":4}'
    assert "exit code           2" in tables.scan_details(scan)


def test_scan_details_say_where_the_scan_was_started() -> None:
    scan = v1.Scan(id="s", requested_by="admin", trigger="portal")
    assert "via                 portal\n" in tables.scan_details(scan)
