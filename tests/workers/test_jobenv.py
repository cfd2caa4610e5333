from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.jobs import job_environ
from contracts.scans import StartScan
from scanners import TOOLS
from scanners.nmap.config import NmapConfig
from scanners.targets import TargetKind
from workers import jobenv
from workers.jobenv import JobEnvError

BASE = {
    "JETSCAN_SCAN_ID": "scan-1_a",
    "JETSCAN_TOOL": "nmap",
    "JETSCAN_TARGET": "127.0.0.1",
    "JETSCAN_CONFIG": '{"ports": "22,80", "timing": 4}',
    "JETSCAN_NATS_URL": "nats://127.0.0.1:4222",
}


def env_with(**changes: str | None) -> dict[str, str]:
    environ = {**BASE, **{f"JETSCAN_{k.upper()}": v for k, v in changes.items()}}
    return {k: v for k, v in environ.items() if v is not None}


def start_scan(**changes: Any) -> StartScan:
    fields: dict[str, Any] = {
        "scan_id": "s1",
        "target": "Example.COM.",
        "domain": "example.com",
        "tool": "nmap",
        "config": {"ports": "443"},
        "deadline_seconds": 600,
        "requested_by": "alice",
        "requested_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return StartScan(**{**fields, **changes})


def test_a_complete_env_is_parsed_into_typed_values() -> None:
    env = jobenv.parse(BASE)
    assert env.scan_id == "scan-1_a"
    assert env.tool == "nmap"
    assert env.spec is TOOLS["nmap"]
    assert env.target.kind is TargetKind.IP
    assert env.target.value == "127.0.0.1"
    assert env.config == NmapConfig(ports="22,80", timing=4)
    assert env.nats_url == "nats://127.0.0.1:4222"


def test_optional_variables_have_defaults() -> None:
    env = jobenv.parse(env_with(config=None))
    assert env.config == NmapConfig()
    assert env.deadline_seconds == TOOLS["nmap"].default_deadline_seconds
    assert env.nats_creds == ""
    assert env.workdir == ""


def test_optional_variables_are_read_when_set() -> None:
    env = jobenv.parse(
        env_with(nats_creds="/var/run/nats/job.creds", deadline_seconds="90", workdir="/work")
    )
    assert (env.nats_creds, env.deadline_seconds, env.workdir) == (
        "/var/run/nats/job.creds",
        90,
        "/work",
    )


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"config": None},
        {"target": "10.0.0.0/24", "deadline_seconds": "5", "workdir": "/tmp/x"},
        {"nats_creds": "/creds", "target": "scanme.example.org"},
        {"attempt": "2", "console_after": "41"},
    ],
)
def test_to_environ_is_the_inverse_of_parse(changes: dict[str, str | None]) -> None:
    env = jobenv.parse(env_with(**changes))
    assert jobenv.parse(jobenv.to_environ(env)) == env


def test_to_environ_leaves_unset_optional_variables_out() -> None:
    environ = jobenv.to_environ(jobenv.parse(BASE))
    assert set(environ) == {
        "JETSCAN_SCAN_ID",
        "JETSCAN_TOOL",
        "JETSCAN_TARGET",
        "JETSCAN_CONFIG",
        "JETSCAN_NATS_URL",
        "JETSCAN_DEADLINE_SECONDS",
    }


def test_the_launchers_env_parses_into_the_commands_scan() -> None:
    environ = job_environ(start_scan(), "tls://nats.jetscan:4222", nats_creds="/c")
    env = jobenv.parse(environ)
    assert (env.scan_id, env.tool, env.deadline_seconds) == ("s1", "nmap", 600)
    assert env.target.value == "example.com"
    assert env.config == NmapConfig(ports="443")
    assert (env.nats_url, env.nats_creds, env.workdir) == ("tls://nats.jetscan:4222", "/c", "")
    assert jobenv.parse(jobenv.to_environ(env)) == env


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"target": "-oN/etc/passwd"}, "JETSCAN_TARGET"),
        ({"config": {"args": "--script=brute"}}, "JETSCAN_CONFIG"),
        ({"tool": "metasploit"}, "JETSCAN_TOOL"),
        ({"scan_id": "a.b"}, "JETSCAN_SCAN_ID"),
        ({"deadline_seconds": 0}, "JETSCAN_DEADLINE_SECONDS"),
    ],
)
def test_the_job_refuses_a_bad_command_the_launcher_passed_on(
    changes: dict[str, Any], variable: str
) -> None:
    with pytest.raises(JobEnvError) as caught:
        jobenv.parse(job_environ(start_scan(**changes), "nats://127.0.0.1:4222"))
    assert caught.value.variable == variable


def test_programs_and_scope_reach_the_job() -> None:
    programs = {"zap.sh": "/opt/zap/zap.sh", "subfinder": "/usr/local/bin/subfinder"}
    environ = job_environ(
        start_scan(), "nats://127.0.0.1:4222", programs=programs, scope="example.com,10.0.0.0/8"
    )
    assert environ["JETSCAN_PROGRAMS"] == (
        "subfinder=/usr/local/bin/subfinder,zap.sh=/opt/zap/zap.sh"
    )
    env = jobenv.parse(environ)
    assert (env.programs, env.scope) == (programs, "example.com,10.0.0.0/8")
    assert jobenv.parse(jobenv.to_environ(env)) == env


@pytest.mark.parametrize(
    ("changes", "variable", "reason"),
    [
        ({"scan_id": None}, "JETSCAN_SCAN_ID", "is not set"),
        ({"scan_id": ""}, "JETSCAN_SCAN_ID", "is not set"),
        ({"scan_id": "a.*"}, "JETSCAN_SCAN_ID", "'a.*' is not 1-128 letters"),
        ({"scan_id": "x" * 129}, "JETSCAN_SCAN_ID", "is not 1-128 letters"),
        ({"tool": None}, "JETSCAN_TOOL", "is not set"),
        ({"tool": "zmap"}, "JETSCAN_TOOL", "unknown tool 'zmap'; known: "),
        ({"target": None}, "JETSCAN_TARGET", "is not set"),
        ({"target": "http://example.com/"}, "JETSCAN_TARGET", "url targets are not accepted"),
        ({"target": "a;b"}, "JETSCAN_TARGET", "shell metacharacter"),
        ({"target": "10.0.0.0/8"}, "JETSCAN_TARGET", "too large"),
        ({"config": "ports=22"}, "JETSCAN_CONFIG", "is not JSON"),
        ({"config": "[]"}, "JETSCAN_CONFIG", "must be a JSON object"),
        ({"config": '{"ports": "22;ls"}'}, "JETSCAN_CONFIG", "ports: '22;ls' is not a port"),
        ({"config": '{"extra": 1}'}, "JETSCAN_CONFIG", "extra: is not a known option"),
        ({"nats_url": None}, "JETSCAN_NATS_URL", "is not set"),
        ({"nats_url": "http://x:4222"}, "JETSCAN_NATS_URL", "expected a nats://"),
        ({"nats_url": "nats://"}, "JETSCAN_NATS_URL", "expected a nats://"),
        ({"deadline_seconds": "0"}, "JETSCAN_DEADLINE_SECONDS", "from 1 to 86400, got '0'"),
        ({"deadline_seconds": "-5"}, "JETSCAN_DEADLINE_SECONDS", "got '-5'"),
        ({"deadline_seconds": "1.5"}, "JETSCAN_DEADLINE_SECONDS", "got '1.5'"),
        ({"deadline_seconds": "86401"}, "JETSCAN_DEADLINE_SECONDS", "got '86401'"),
        ({"deadline_seconds": "١٢"}, "JETSCAN_DEADLINE_SECONDS", "whole seconds"),
        ({"workdir": "relative/dir"}, "JETSCAN_WORKDIR", "must be an absolute path"),
        ({"programs": "zap.sh"}, "JETSCAN_PROGRAMS", "expected NAME=/absolute/path"),
        ({"programs": "zap.sh=zap"}, "JETSCAN_PROGRAMS", "'zap.sh=zap'"),
        ({"programs": "../x=/bin/x"}, "JETSCAN_PROGRAMS", "expected NAME"),
        ({"scope": "*.example.com"}, "JETSCAN_SCOPE", "covers its subdomains"),
        ({"scope": "10.0.0.1/8"}, "JETSCAN_SCOPE", "host bits set"),
        ({"console_max_bytes": "1000"}, "JETSCAN_CONSOLE_MAX_BYTES", "from 65536 to"),
        ({"console_max_bytes": "64MiB"}, "JETSCAN_CONSOLE_MAX_BYTES", "got '64MiB'"),
        ({"attempt": "0"}, "JETSCAN_ATTEMPT", "from 1 to 10, got '0'"),
        ({"attempt": "two"}, "JETSCAN_ATTEMPT", "got 'two'"),
        ({"console_after": "-1"}, "JETSCAN_CONSOLE_AFTER", "got '-1'"),
    ],
)
def test_a_bad_variable_is_named_with_a_reason(
    changes: dict[str, str | None], variable: str, reason: str
) -> None:
    with pytest.raises(JobEnvError) as caught:
        jobenv.parse(env_with(**changes))
    assert caught.value.variable == variable
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{variable}: ")


def test_the_first_bad_variable_in_contract_order_is_reported() -> None:
    with pytest.raises(JobEnvError) as caught:
        jobenv.parse({"JETSCAN_TOOL": "nope"})
    assert caught.value.variable == "JETSCAN_SCAN_ID"


def test_the_scanner_sees_no_jetscan_variables() -> None:
    environ = {**BASE, "JETSCAN_NATS_CREDS": "/c", "PATH": "/usr/bin", "HOME": "/home/scan"}
    assert jobenv.scanner_environ(environ) == {"PATH": "/usr/bin", "HOME": "/home/scan"}


def test_the_console_cap_travels_in_the_contract() -> None:
    assert jobenv.parse(env_with()).console_max_bytes == 64 * 1024 * 1024
    env = jobenv.parse(env_with(console_max_bytes="1048576"))
    assert env.console_max_bytes == 1048576
    assert jobenv.parse(jobenv.to_environ(env)) == env


def test_a_retry_carries_its_attempt_and_where_its_console_continues() -> None:
    assert (jobenv.parse(env_with()).attempt, jobenv.parse(env_with()).console_after) == (1, 0)
    env = jobenv.parse(env_with(attempt="2", console_after="41"))
    assert (env.attempt, env.console_after) == (2, 41)
