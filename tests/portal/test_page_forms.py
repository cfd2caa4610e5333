"""The findings, schedule and report forms as requests: what each field becomes, and the
field each refusal is shown next to (pure: no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from grpclib.const import Status

from contracts.gen.jetscan import v1
from edge.portal import findings, reports, scheduleform
from edge.portal.forms import Refused

NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


def _params(**given: str) -> dict[str, str]:
    return {name: given.get(name, "") for name in findings.FILTERS}


def test_a_findings_url_is_a_list_request() -> None:
    msg, errors = findings.list_message(
        _params(domain="example.com", severity="high", state="fixed", triage="accepted_risk"),
        "tok",
    )
    assert errors == {}
    assert msg.domain == "example.com" and msg.page_token == "tok" and msg.page_size == 100
    assert msg.severity == v1.Severity.HIGH
    assert msg.state == v1.FindingState.FIXED
    assert msg.triage == v1.Triage.ACCEPTED_RISK
    _, errors = findings.list_message(_params(severity="urgent", state="gone"), "")
    assert set(errors) == {"severity", "state"}
    assert "expected one of info, low, medium, high, critical" in errors["severity"]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"triage": "ignored"}, "triage"),
        ({"severity_override": "huge"}, "severity_override"),
        ({"until": "next tuesday"}, "until"),
    ],
)
def test_a_bad_triage_form_names_its_field(form: dict[str, str], field: str) -> None:
    full = {"triage": "accepted_risk", "severity_override": "", "reason": "r", "until": ""}
    with pytest.raises(Refused) as refused:
        findings.triage_message("f1", {**full, **form})
    assert refused.value.field == field and refused.value.status == Status.INVALID_ARGUMENT


def test_a_triage_form_is_a_triage_request() -> None:
    msg = findings.triage_message(
        "f1",
        {
            "triage": "accepted_risk",
            "severity_override": "low",
            "reason": "r",
            "until": "2027-01-02T03:04",
        },
    )
    assert msg.triage == v1.Triage.ACCEPTED_RISK and msg.severity_override == v1.Severity.LOW
    assert msg.until == datetime(2027, 1, 2, 3, 4, tzinfo=UTC)
    reopen = findings.triage_message(
        "f1", {"triage": "", "severity_override": "", "reason": "", "until": ""}
    )
    assert reopen.triage == v1.Triage.NONE and reopen.until is None


def test_a_schedule_form_is_a_schedule() -> None:
    form = {
        **scheduleform.blank(),
        "target": "example.com",
        "nmap:ports": "22,80",
        "nmap:timing": "3",
        "nmap:reverse_dns": "on",
        "timezone": "Europe/Berlin",
        "jitter_seconds": "30",
    }
    s = scheduleform.to_schedule(form)
    assert s.target == "example.com" and s.timezone == "Europe/Berlin"
    assert s.config is not None and s.config.to_dict() == {"ports": "22,80"}
    assert (s.jitter_seconds, s.catchup_window_seconds, s.deadline_seconds) == (30, 3600, 0)
    assert scheduleform.to_schedule({**form, "timezone": "UTC"}).timezone == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nmap:timing": "fast"}, "config.timing"),
        ({"jitter_seconds": "-5"}, "jitter_seconds"),
        ({"deadline_seconds": "1e3"}, "deadline_seconds"),
    ],
)
def test_a_bad_schedule_form_names_its_field(change: dict[str, str], field: str) -> None:
    with pytest.raises(Refused) as refused:
        scheduleform.to_schedule({**scheduleform.blank(), **change})
    assert refused.value.field == field


def test_a_schedule_service_refusal_is_named_for_the_form() -> None:
    named = scheduleform.form_field(Refused(Status.INVALID_ARGUMENT, "schedule.cron", "bad"))
    assert (named.field, named.reason) == ("cron", "bad")
    named = scheduleform.form_field(
        Refused(Status.INVALID_ARGUMENT, "schedule.config.ports", "out of range")
    )
    assert (named.field, named.reason) == ("config.ports", "out of range")


def test_the_preview_is_the_scheduler_s_fire_times_on_both_clocks() -> None:
    # Berlin leaves summer time on 2026-10-25: the same wall time, another UTC offset.
    times = scheduleform.preview(
        "30 1 * * *", "Europe/Berlin", datetime(2026, 10, 23, tzinfo=UTC), 3
    )
    assert [(t.local, t.utc) for t in times] == [
        ("Sat 2026-10-24 01:30 CEST", "2026-10-23 23:30 UTC"),
        ("Sun 2026-10-25 01:30 CEST", "2026-10-24 23:30 UTC"),
        ("Mon 2026-10-26 01:30 CET", "2026-10-26 00:30 UTC"),
    ]


def test_a_report_form_is_one_request_per_format() -> None:
    form = {
        "subject_kind": "scan",
        "subject": "a1, b2",
        "formats": ["pdf"],
        "min_severity": "medium",
        "include_triaged": True,
    }
    msg = reports.generate_message(form, "sarif", "rid-sarif")
    assert msg.format == v1.ReportFormat.SARIF and msg.request_id == "rid-sarif"
    assert msg.scan_ids is not None and msg.scan_ids.ids == ["a1", "b2"]
    assert msg.min_severity == v1.Severity.MEDIUM and msg.include_triaged
    for kind, attr in (("domain", "domain"), ("target", "target"), ("schedule", "schedule_id")):
        msg = reports.generate_message({**form, "subject_kind": kind}, "csv", "")
        assert getattr(msg, attr) == "a1, b2"
    for bad, field in (
        ({"subject": ""}, "subject"),
        ({"subject_kind": "galaxy"}, "subject_kind"),
        ({"min_severity": "dire"}, "min_severity"),
    ):
        with pytest.raises(Refused) as refused:
            reports.generate_message({**form, **bad}, "pdf", "")
        assert refused.value.field == field
