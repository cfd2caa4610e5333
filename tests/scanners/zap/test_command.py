from __future__ import annotations

import re
from pathlib import Path, PurePath
from typing import Any

import pytest
import yaml

from scanners import TOOLS
from scanners.context import JobContext
from scanners.errors import TargetError
from scanners.scope import Scope, in_scope
from scanners.targets import Target, TargetKind, parse_target
from scanners.zap.command import build_argv, prepare
from scanners.zap.config import OVERHEAD_SECONDS, ZapConfig
from scanners.zap.plan import build_plan, context_url, phase_minutes
from tests.scanners.zap.afplan import check_plan, plan_minutes

JOB = JobContext(workdir=PurePath("/work/scan-1"), deadline_seconds=3600)
EVERYTHING = ZapConfig(
    spider_minutes=2,
    ajax_spider_minutes=3,
    passive_wait_minutes=4,
    active_scan_minutes=30,
    active_scan_policy="API-Minimal",
)


def url(text: str) -> Target:
    return parse_target(text, allowed_kinds=TOOLS["zap"].target_kinds)


def test_argv_runs_the_plan_inline_and_silent() -> None:
    assert build_argv(ZapConfig(), url("https://example.com/"), JOB) == [
        "zap.sh",
        "-cmd",
        "-silent",
        "-autorun",
        "/work/scan-1/plan.yaml",
    ]


def test_argv_uses_the_configured_program() -> None:
    job = JobContext(workdir=PurePath("/w"), programs={"zap.sh": "/opt/zap/zap.sh"})
    assert build_argv(ZapConfig(), url("http://10.0.0.5:8080/app/"), job)[0] == "/opt/zap/zap.sh"


def test_the_target_reaches_zap_only_in_the_plan() -> None:
    target = url("http://example.com/app/")
    assert not any("example.com" in arg for arg in build_argv(ZapConfig(), target, JOB))


@pytest.mark.parametrize(
    "target",
    [
        Target(kind=TargetKind.URL, value="http://Example.com/", host="example.com", domain="x"),
        Target(kind=TargetKind.HOST, value="example.com", host="example.com", domain="x"),
        Target(kind=TargetKind.URL, value="http://a.com/ -config", host="a.com", domain="a.com"),
    ],
)
def test_a_target_that_did_not_come_through_parse_target_is_refused(target: Target) -> None:
    with pytest.raises(TargetError):
        build_argv(ZapConfig(), target, JOB)
    with pytest.raises(TargetError):
        prepare(ZapConfig(), target, JOB)


def test_only_http_urls_are_zap_targets() -> None:
    for text in ("example.com", "10.0.0.5", "10.0.0.0/24"):
        with pytest.raises(TargetError, match="not accepted"):
            url(text)


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("http://127.0.0.1:8080/", True),
        ("https://localhost/app/", True),
        ("http://api.localhost:3000/", True),
        ("http://[::1]:8080/", False),
        ("https://example.com/", False),
        ("http://127.0.0.1.example.com/", False),
    ],
)
def test_url_targets_are_in_scope_by_their_host(text: str, allowed: bool) -> None:
    assert in_scope(url(text), Scope.parse("localhost,127.0.0.0/8")) is allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://example.com/", "http://example.com/"),
        ("http://example.com:80/app/", "http://example.com/app/"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
        ("http://[::1]:80/", "http://[::1]/"),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
    ],
)
def test_the_context_url_drops_only_a_default_port(text: str, expected: str) -> None:
    assert context_url(url(text)) == expected


@pytest.mark.parametrize(
    ("config", "deadline", "expected"),
    [
        # No deadline known, or room enough: the configured minutes.
        (ZapConfig(), None, {"spider_minutes": 5, "passive_wait_minutes": 5}),
        (ZapConfig(), 3600, {"spider_minutes": 5, "passive_wait_minutes": 5}),
        (ZapConfig(), OVERHEAD_SECONDS + 600, {"spider_minutes": 5, "passive_wait_minutes": 5}),
        # A minute short: both shrink in proportion.
        (ZapConfig(), OVERHEAD_SECONDS + 599, {"spider_minutes": 4, "passive_wait_minutes": 4}),
        (
            EVERYTHING,
            OVERHEAD_SECONDS + 20 * 60,
            {
                "spider_minutes": 1,
                "ajax_spider_minutes": 1,
                "passive_wait_minutes": 2,
                "active_scan_minutes": 15,
            },
        ),
        # Less than a minute each: a minute each (0 is unlimited to ZAP); the job's deadline
        # stops ZAP.
        (ZapConfig(), 3, {"spider_minutes": 1, "passive_wait_minutes": 1}),
    ],
)
def test_phases_fit_the_deadline(
    config: ZapConfig, deadline: int | None, expected: dict[str, int]
) -> None:
    minutes = phase_minutes(config, deadline)
    assert minutes == expected
    if deadline is not None and deadline >= OVERHEAD_SECONDS + 60 * len(expected):
        assert sum(minutes.values()) * 60 + OVERHEAD_SECONDS <= deadline


def jobs(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["type"]: job["parameters"] for job in plan["jobs"]}


def test_the_default_plan_spiders_waits_and_reports() -> None:
    plan = build_plan(ZapConfig(), url("http://example.com:80/app/"), JOB, "zap-report.json")
    assert plan["env"] == {
        "contexts": [
            {
                "name": "jetscan",
                "urls": ["http://example.com/app/"],
                "includePaths": [re.escape("http://example.com/app/") + ".*"],
            }
        ],
        "parameters": {"failOnError": False, "failOnWarning": False, "progressToStdout": True},
    }
    assert [job["type"] for job in plan["jobs"]] == [
        "passiveScan-config",
        "spider",
        "passiveScan-wait",
        "report",
    ]
    assert jobs(plan) == {
        "passiveScan-config": {"scanOnlyInScope": True},
        "spider": {"context": "jetscan", "url": "http://example.com/app/", "maxDuration": 5},
        "passiveScan-wait": {"maxDuration": 5},
        "report": {
            "template": "traditional-json",
            "reportDir": "/work/scan-1",
            "reportFile": "zap-report.json",
            "reportTitle": "jetscan: http://example.com:80/app/",
        },
    }


def test_the_full_plan_adds_the_ajax_spider_and_the_active_scan() -> None:
    plan = build_plan(EVERYTHING, url("https://example.com/"), JOB, "zap-report.json")
    assert [job["type"] for job in plan["jobs"]] == [
        "passiveScan-config",
        "spider",
        "spiderAjax",
        "passiveScan-wait",
        "activeScan",
        "report",
    ]
    assert jobs(plan)["spiderAjax"] == {
        "context": "jetscan",
        "url": "https://example.com/",
        "maxDuration": 3,
        "inScopeOnly": True,
    }
    assert jobs(plan)["activeScan"] == {
        "context": "jetscan",
        "policy": "API-Minimal",
        "maxScanDurationInMins": 30,
    }
    active = build_plan(ZapConfig(active_scan_minutes=10), url("https://a.io/"), JOB, "r.json")
    assert jobs(active)["activeScan"]["policy"] == "Default Policy"


def test_the_include_path_keeps_zap_under_the_target() -> None:
    plan = build_plan(ZapConfig(), url("http://127.0.0.1:8080/app/"), JOB, "r.json")
    [include] = plan["env"]["contexts"][0]["includePaths"]
    assert re.fullmatch(include, "http://127.0.0.1:8080/app/login?next=/")
    assert not re.fullmatch(include, "http://127.0.0.1:8080/other/")
    assert not re.fullmatch(include, "http://127.0.0.1:80801/app/")
    assert not re.fullmatch(include, "http://127.0.0.1x8080/app/")


@pytest.mark.parametrize("config", [ZapConfig(), EVERYTHING])
@pytest.mark.parametrize("deadline", [None, 3, 900, 3600, 86400])
def test_the_prepared_plan_is_valid_yaml_for_the_automation_framework(
    tmp_path: Path, config: ZapConfig, deadline: int | None
) -> None:
    job = JobContext(workdir=tmp_path, deadline_seconds=deadline)
    files = prepare(config, url("http://127.0.0.1:8080/app/"), job)
    assert list(files) == ["plan.yaml"]
    plan = yaml.safe_load(files["plan.yaml"])
    assert check_plan(plan) == []
    if deadline is not None and deadline > OVERHEAD_SECONDS + 4 * 60:
        assert plan_minutes(plan) * 60 + OVERHEAD_SECONDS <= deadline


def test_the_checker_finds_what_zap_would_refuse(tmp_path: Path) -> None:
    plan = build_plan(EVERYTHING, url("http://127.0.0.1:8080/"), JobContext(workdir=tmp_path), "r")
    plan["env"]["parameters"]["failOnErrors"] = True
    plan["jobs"][1]["parameters"]["maxDuration"] = 0
    plan["jobs"][2]["parameters"]["context"] = "other"
    plan["jobs"][4]["parameters"]["maxScanDuration"] = 5
    plan["jobs"][5]["parameters"]["template"] = "traditional-xml"
    plan["jobs"].reverse()
    assert check_plan(plan) == [
        "env.parameters.failOnErrors: not an environment parameter",
        "jobs[0].parameters.template: jetscan reads traditional-json",
        "jobs[1].parameters.maxScanDuration: not a activeScan parameter",
        "jobs[3].parameters.context: 'other' is not defined",
        "jobs[4].parameters.maxDuration: whole minutes, at least 1",
        "jobs run in the order ['report', 'activeScan', 'passiveScan-wait', 'spiderAjax',"
        " 'spider', 'passiveScan-config'], not ['passiveScan-config', 'spider', 'spiderAjax',"
        " 'passiveScan-wait', 'activeScan', 'report']",
        "a scan spiders, waits for the passive scanner and ends with its report",
    ]
