"""The ZAP scan job as a launcher runs it: a real job process, real NATS, and the `zap.sh`
stand-in (ZAP cannot be installed here) given to the job as a configured program."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from nats.aio.client import Client

from contracts.jobs import job_environ
from contracts.output import EndOfOutput, OutputLine
from contracts.scans import StartScan
from contracts.zap import ZapReport
from scanners import TOOLS
from scanners.zap.config import OVERHEAD_SECONDS
from tests.conftest import finish_job, start_job
from tests.corpus import corpus_file
from tests.scanners.zap.afplan import LIMITS, check_plan, plan_minutes
from tests.scanners.zap.standin import write_standin
from tests.workers import messages
from workers import jobresult

REPORT = "zap/bcgov-pt-2.14.0__report_json.json"


def zap_job_env(
    nats_url: str, standin: Path, target: str, config: dict[str, Any], deadline: int = 600
) -> tuple[str, dict[str, str]]:
    scan_id = uuid.uuid4().hex
    cmd = StartScan(
        scan_id=scan_id,
        target=target,
        domain="127.0.0.1/32",
        tool="zap",
        config=config,
        deadline_seconds=deadline,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )
    environ = job_environ(cmd, nats_url, programs={"zap.sh": str(standin)})
    return scan_id, {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}


async def run_job(env: dict[str, str], timeout: float = 90) -> tuple[int, str]:
    return await finish_job(await start_job(env), timeout)


async def test_the_job_writes_the_plan_runs_zap_and_publishes_the_report(
    applied: str, nc: Client, tmp_path: Path
) -> None:
    report = corpus_file(REPORT)
    standin = write_standin(tmp_path, report)
    config = {"spider_minutes": 2, "active_scan_minutes": 3}
    scan_id, env = zap_job_env(applied, standin, "http://127.0.0.1:8080/app/", config, deadline=600)
    code, stderr = await run_job(env)
    assert code == jobresult.EXIT_OK, stderr

    [plan_file] = (tmp_path / "plans").iterdir()
    plan = yaml.safe_load(plan_file.read_text())
    assert check_plan(plan, running=False) == []  # the job has removed its work directory
    assert plan["env"]["contexts"][0]["urls"] == ["http://127.0.0.1:8080/app/"]
    # 2 + 5 + 3 minutes do not fit the 600 s deadline with ZAP's start-up and report: the
    # job handed the deadline to the plan, which shortened every phase in proportion.
    assert {j["type"]: j["parameters"].get(LIMITS.get(j["type"], "")) for j in plan["jobs"]} == {
        "passiveScan-config": None,
        "spider": 1,
        "passiveScan-wait": 4,
        "activeScan": 2,
        "report": None,
    }
    assert plan_minutes(plan) * 60 + OVERHEAD_SECONDS <= 600

    js = nc.jetstream()
    output = await messages.output(js, scan_id)
    texts = [m.text for m in output if isinstance(m, OutputLine)]
    assert "Job activeScan started" in texts
    assert isinstance(output[-1], EndOfOutput)
    [result] = await messages.results(js, "zap", scan_id)
    assert (result.exit_code, result.partial, result.error) == (0, False, "")
    expected = TOOLS["zap"].parse(report.read_bytes())
    assert result.findings == expected.findings
    assert isinstance(result.data, ZapReport)
    assert result.data == expected.data
    # The report's own "@version" names the scanner's.
    assert expected.data.version and result.scanner_version == expected.data.version
    assert result.artifact == f"scans/{scan_id}/zap-report.json"
    stored = await (await js.object_store("artifacts")).get(result.artifact)
    assert stored.data == report.read_bytes()


async def test_a_zap_config_the_job_cannot_use_exits_2_naming_the_option(
    applied: str, tmp_path: Path
) -> None:
    standin = write_standin(tmp_path, tmp_path / "unused.json")
    _, env = zap_job_env(applied, standin, "http://127.0.0.1:8080/", {"spider_minutes": 0})
    code, stderr = await run_job(env)
    assert code == jobresult.EXIT_BAD_ENV
    assert stderr.startswith("jetscan job: JETSCAN_CONFIG: spider_minutes: Expected `int` >= 1")
    assert not (tmp_path / "plans").exists()


@pytest.mark.parametrize("target", ["127.0.0.1", "ftp://127.0.0.1/"])
async def test_a_target_that_is_not_an_http_url_exits_2(
    applied: str, tmp_path: Path, target: str
) -> None:
    standin = write_standin(tmp_path, tmp_path / "unused.json")
    _, env = zap_job_env(applied, standin, target, {})
    code, stderr = await run_job(env)
    assert code == jobresult.EXIT_BAD_ENV
    assert stderr.startswith("jetscan job: JETSCAN_TARGET: ")
