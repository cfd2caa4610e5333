"""The permission table, pure: what each role and each scan job may publish and subscribe."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from contracts import subjects
from contracts.results import ScanResult, ToolData
from contracts.settings import ROLES
from handlers import permissions, topology
from handlers.ingest.provenance import mismatch
from handlers.natsauth import Permissions

TOPO = topology.load()


def allowed(patterns: tuple[str, ...], denied: tuple[str, ...], subject: str) -> bool:
    return any(subjects.matches(p, subject) for p in patterns) and not any(
        subjects.matches(d, subject) for d in denied
    )


def may_publish(p: Permissions, subject: str) -> bool:
    return allowed(p.pub_allow, p.pub_deny, subject)


def may_subscribe(p: Permissions, subject: str) -> bool:
    return allowed(p.sub_allow, p.sub_deny, subject)


@pytest.mark.parametrize(
    ("role", "subject"),
    [
        # Commands and queries added later (triage, schedules) need no change here.
        ("edge", "cmd.finding.f1.triage"),
        ("edge", "cmd.schedule.c1.upsert"),
        ("edge", "query.schedule.list"),
        ("edge", "$SRV.PING.jetscan-queries"),
        ("launcher", "evt.scan.s1.launched"),
        ("launcher", "$KV.launches.s1"),
        ("ingest", "evt.scan.s1.failed"),
        ("scheduler", "cmd.scan.s1.start"),
        ("reports", "evt.report.r1.ready"),
    ],
)
def test_roles_may_publish_what_they_send(role: str, subject: str) -> None:
    assert may_publish(permissions.role(role, TOPO), subject)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_pulls_exactly_its_own_durables(role: str) -> None:
    p = permissions.role(role, TOPO)
    for c in TOPO.consumers:
        pull = f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}"
        assert may_publish(p, pull) == c.durable.startswith(f"{role}-"), pull


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_replies_on_its_own_inbox_only(role: str) -> None:
    p = permissions.role(role, TOPO)
    assert may_subscribe(p, subjects.role_inbox(role) + ".x")
    for other in ROLES:
        if other != role:
            assert not may_subscribe(p, subjects.role_inbox(other) + ".x")
    assert not may_subscribe(p, subjects.scan_inbox("s1") + ".x")
    assert not may_subscribe(p, "_INBOX.x")


def test_queries_answer_every_query_and_the_edge_sends_them() -> None:
    assert may_subscribe(permissions.role("queries", TOPO), "query.schedule.list")
    assert not may_subscribe(permissions.role("edge", TOPO), "query.scan.get")


def test_the_edge_may_not_delete_a_durable_consumer() -> None:
    edge = permissions.role("edge", TOPO)
    assert may_publish(edge, "$JS.API.CONSUMER.DELETE.OUTPUT.someviewer")
    for c in TOPO.consumers:
        if c.stream in ("OUTPUT", "EVENTS"):
            assert not may_publish(edge, f"$JS.API.CONSUMER.DELETE.{c.stream}.{c.durable}")


def test_only_the_launcher_purges_the_admission_queue_and_nothing_else() -> None:
    purge = "$JS.API.STREAM.PURGE.KV_admission"
    for role in ROLES:
        assert may_publish(permissions.role(role, TOPO), purge) == (role == "launcher"), role
    launcher = permissions.role("launcher", TOPO)
    for stream in ("KV_launches", "KV_heartbeats", "COMMANDS", "EVENTS", "OUTPUT"):
        assert not may_publish(launcher, f"$JS.API.STREAM.PURGE.{stream}"), stream


def test_only_the_admin_writes_tokens() -> None:
    for role in ROLES:
        assert not may_publish(permissions.role(role, TOPO), "$KV.tokens.k")
    assert may_publish(permissions.role("admin", TOPO), "$KV.tokens.k")


def test_a_job_names_only_its_own_scan_and_no_wildcard() -> None:
    p = permissions.job("s1", "nmap", "nmap.xml")
    for pattern in (*p.pub_allow, *p.sub_allow):
        assert "*" not in pattern.split(".")
    assert may_publish(p, "scan.output.s1")
    assert may_publish(p, "scan.results.nmap.s1")
    assert may_publish(p, "evt.scan.s1.running")
    assert may_publish(p, "$KV.heartbeats.s1")
    assert may_publish(p, permissions.object_meta_subject("artifacts", "scans/s1/nmap.xml"))
    assert may_publish(p, permissions.object_chunk_subject("artifacts", "s1_0"))
    for subject in (
        "scan.output.s2",
        "scan.results.nmap.s2",
        "scan.results.zap.s1",
        "evt.scan.s1.succeeded",
        "$KV.heartbeats.s2",
        permissions.object_meta_subject("artifacts", "scans/s2/nmap.xml"),
        "$O.artifacts.C.s2_0",
        "$JS.API.STREAM.MSG.GET.OBJ_artifacts",
    ):
        assert not may_publish(p, subject), subject
    assert not p.responses
    assert p.sub_allow == ("_INBOX.scan.s1.>",)


def test_unknown_roles_have_no_permissions() -> None:
    with pytest.raises(ValueError, match="no permissions for role"):
        permissions.role("stranger", TOPO)


def _result(**changes: object) -> ScanResult:
    base = ScanResult(
        scan_id="s1",
        tool="nmap",
        target="127.0.0.1",
        finished_at=datetime.now(UTC),
        exit_code=0,
        partial=False,
        findings=(),
        data=msgspec.convert({"kind": "nmap"}, ToolData),
    )
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize(
    ("subject", "result", "reason"),
    [
        ("scan.results.nmap.s1", _result(), ""),
        ("scan.results.nmap", _result(), ""),  # before results named their scan
        ("scan.results.nmap.s2", _result(), "result for scan 's1' published on"),
        ("scan.results.zap.s1", _result(), "result for tool 'nmap' published on"),
        ("scan.results.nmap.s1", _result(target="127.0.0.2"), "was started on '127.0.0.1'"),
    ],
)
def test_ingest_accepts_only_the_result_its_start_command_asked_for(
    subject: str, result: ScanResult, reason: str
) -> None:
    got = mismatch(subject, result, "nmap", "127.0.0.1")
    assert (got == "") if not reason else (reason in got)


def test_ingest_refuses_a_result_from_another_tool() -> None:
    result = _result(tool="sslyze", data=msgspec.convert({"kind": "sslyze"}, ToolData))
    assert "was started for 'nmap'" in mismatch("scan.results.sslyze.s1", result, "nmap", "x")
