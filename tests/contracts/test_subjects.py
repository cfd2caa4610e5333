from __future__ import annotations

import pytest

from contracts import subjects


def test_builders_spell_the_design_subjects() -> None:
    assert subjects.scan_start("s1") == "cmd.scan.s1.start"
    assert subjects.scan_cancel("s1") == "cmd.scan.s1.cancel"
    assert subjects.report_generate("r1") == "cmd.report.r1.generate"
    assert subjects.schedule_upsert("c1") == "cmd.schedule.c1.upsert"
    assert subjects.schedule_delete("c1") == "cmd.schedule.c1.delete"
    assert subjects.schedule_run("c1") == "cmd.schedule.c1.run"
    assert subjects.scan_event("s1", "running") == "evt.scan.s1.running"
    assert subjects.report_event("r1", "ready") == "evt.report.r1.ready"
    assert subjects.scan_output("s1") == "scan.output.s1"
    assert subjects.scan_results("nmap") == "scan.results.nmap"
    assert subjects.scan_result("nmap", "s1") == "scan.results.nmap.s1"
    assert subjects.role_inbox("edge") == "_INBOX.role.edge"
    assert subjects.scan_inbox("s1") == "_INBOX.scan.s1"
    assert subjects.query("scan", "list") == "query.scan.list"
    assert subjects.service_ping("jetscan-queries") == "$SRV.PING.jetscan-queries"


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "a b", "x\n", "é", "a" * 129])
def test_ids_that_would_escape_their_token_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        subjects.scan_start(bad)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("cmd.>", "cmd.scan.a.start", True),
        ("cmd.>", "cmd", False),
        ("cmd.scan.*.*", "cmd.scan.a.start", True),
        ("cmd.scan.*.*", "cmd.scan.a", False),
        ("cmd.scan.*.*", "cmd.scan.a.b.c", False),
        ("scan.output.*", "scan.output.x", True),
        ("scan.output.*", "scan.results.x", False),
    ],
)
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subjects.matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("cmd.>", "cmd.scan.*.*", True),
        ("cmd.scan.*.*", "cmd.report.*.generate", False),
        ("evt.>", "cmd.>", False),
        ("scan.output.*", "scan.output.>", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a", False),
    ],
)
def test_overlaps(a: str, b: str, expected: bool) -> None:
    assert subjects.overlaps(a, b) is expected
    assert subjects.overlaps(b, a) is expected


def test_msg_id_is_a_pure_function_of_entity_and_event() -> None:
    assert subjects.msg_id("scan", "s1", "start") == subjects.msg_id("scan", "s1", "start")
    assert subjects.msg_id("scan", "s1", "start") != subjects.msg_id("scan", "s1", "cancel")
