"""`jetscan scan ...` and `jetscan parse ...` as a user runs them: real processes, real edge."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.server import Server

from contracts.gen.jetscan import v1
from contracts.settings import Address
from edge.client import EdgeClient
from scanners import TOOLS
from tests.conftest import Stack, free_port, run_jetscan
from tests.corpus import corpus_file
from workers import tables, usercli

NMAP_WITH_PORTS = "nmap/scb__localhost.xml"


def env_for(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_GRPC_ADDR": str(stack.settings.grpc_addr),
        **extra,
    }


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err.strip()


async def insert_scan(stack: Stack, domain: str, status: str, exit_code: int | None) -> str:
    scan_id = f"cli-{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, exit_code, deadline_seconds,"
            " created_at) VALUES ($1, $2, $3, 'nmap', $4, $5, 600, $6)",
            scan_id,
            f"host.{domain}",
            domain,
            status,
            exit_code,
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    finally:
        await conn.close()
    return scan_id


# --- against the running stack ------------------------------------------------------------


async def test_scan_list_json_and_table(stack: Stack) -> None:
    env = env_for(stack)
    code, out, err = await run_jetscan(env, "scan", "list", "--json")
    assert (code, err) == (0, "")
    for line in out.splitlines():
        assert "id" in json.loads(line)

    domain = f"{uuid.uuid4().hex[:10]}.example"
    assert await run_jetscan(env, "scan", "list", "--json", "--domain", domain) == (0, "", "")
    scan_id = await insert_scan(stack, domain, "failed", 3)
    code, out, _ = await run_jetscan(env, "scan", "list", "--json", "--domain", domain)
    assert code == 0
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["id"], row["status"], row["exitCode"]) == (scan_id, "SCAN_STATUS_FAILED", 3)

    code, out, _ = await run_jetscan(env, "scan", "list", "--domain", domain, "--status", "failed")
    assert code == 0
    header, line = out.splitlines()
    assert header.split() == list(tables.SCAN_HEADERS)
    assert line.split() == [
        scan_id,
        "failed",
        "nmap",
        f"host.{domain}",
        "2026-01-02T03:04:05Z",
        "-",
        "3",
        "0/0/0/0/0",
    ]
    code, out, _ = await run_jetscan(env, "scan", "list", "--domain", domain, "--status", "queued")
    assert (code, len(out.splitlines())) == (0, 1)  # the header alone


async def test_scan_get_shows_one_scan(stack: Stack) -> None:
    scan_id = await insert_scan(stack, "get.example", "succeeded", 0)
    code, out, _ = await run_jetscan(env_for(stack), "scan", "get", scan_id, "--json")
    assert code == 0
    scan = json.loads(out)
    assert (scan["id"], scan["target"], scan["createdAt"]) == (
        scan_id,
        "host.get.example",
        "2026-01-02T03:04:05Z",
    )
    code, out, _ = await run_jetscan(env_for(stack), "scan", "get", scan_id)
    assert code == 0
    fields = dict(line.split("  ", 1) for line in out.splitlines())
    assert fields["id"].strip() == scan_id
    assert fields["status"].strip() == "succeeded"


async def test_errors_are_one_line_with_the_grpc_status(stack: Stack) -> None:
    code, out, err = await run_jetscan(env_for(stack), "scan", "get", "nonexistent")
    assert (code, out) == (1, "")
    assert one_line(err).startswith("jetscan: NOT_FOUND: ")

    bogus = env_for(stack, JETSCAN_TOKEN="jst_not_a_token")
    code, _, err = await run_jetscan(bogus, "scan", "list")
    assert code == 1
    assert one_line(err).startswith("jetscan: UNAUTHENTICATED: ")


async def test_scan_start_rejects_a_malformed_target(stack: Stack) -> None:
    args = ("scan", "start", "foo;rm", "--tool", "nmap", "--set", "ports=1")
    code, out, err = await run_jetscan(env_for(stack), *args)
    assert (code, out) == (1, "")
    assert one_line(err).startswith("jetscan: INVALID_ARGUMENT: ")


async def test_follow_ends_with_the_exit_code_of_a_finished_scan(stack: Stack) -> None:
    failed = await insert_scan(stack, "follow.example", "failed", 3)
    code, _, err = await run_jetscan(env_for(stack), "scan", "follow", failed)
    assert code == 3
    assert err.splitlines()[-1] == f"jetscan: scan {failed}: failed, exit 3"
    succeeded = await insert_scan(stack, "follow.example", "succeeded", None)
    code, out, _ = await run_jetscan(env_for(stack), "scan", "follow", succeeded, "--json")
    assert code == 0
    last = json.loads(out.splitlines()[-1])
    assert last["status"]["status"] == "SCAN_STATUS_SUCCEEDED"


async def test_usage_mistakes_exit_2(stack: Stack) -> None:
    env = env_for(stack)
    for args in (
        ("scan", "list", "--status", "bogus"),
        ("scan", "start", "127.0.0.1"),  # no --tool
        ("scan", "start", "127.0.0.1", "--tool", "nmap", "--set", "timing"),
        ("scan", "start", "127.0.0.1", "--tool", "nmap", "--set", "a=1", "--set", "a=2"),
        ("scan", "start", "127.0.0.1", "--tool", "nmap", "--deadline", "-5"),
        ("parse", "bogus", "file.xml"),
    ):
        code, out, _ = await run_jetscan(env, *args)
        assert (code, out) == (2, ""), args


async def test_an_unreachable_edge_is_one_line(stack: Stack) -> None:
    addr = f"127.0.0.1:{free_port()}"
    code, out, err = await run_jetscan(env_for(stack, JETSCAN_GRPC_ADDR=addr), "scan", "list")
    assert (code, out) == (1, "")
    assert one_line(err) == (f"jetscan: cannot reach the edge at {addr} (is `jetscan up` running?)")


async def test_no_token_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}
    code, _, err = await run_jetscan(env, "scan", "list")
    assert code == 1
    assert one_line(err).startswith("jetscan: no API token: set JETSCAN_TOKEN")


# --- parse: no edge needed ----------------------------------------------------------------


async def test_parse_prints_one_finding_per_line(tmp_path: Path) -> None:
    path = corpus_file(NMAP_WITH_PORTS)
    env = {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}
    code, out, err = await run_jetscan(env, "parse", "nmap", str(path))
    assert (code, err) == (0, "")
    expected = TOOLS["nmap"].parse(path.read_bytes()).findings
    assert expected, "pick a corpus file with open ports"
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(msgspec.json.encode(f)) for f in expected
    ]


async def test_parse_failures_are_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}
    not_xml = tmp_path / "scan.xml"
    not_xml.write_text("this is not nmap output\n")
    code, out, err = await run_jetscan(env, "parse", "nmap", str(not_xml))
    assert (code, out) == (1, "")
    assert one_line(err).startswith(f"jetscan: {not_xml}: not valid nmap: ")
    code, out, err = await run_jetscan(env, "parse", "nmap", str(tmp_path / "missing.xml"))
    assert (code, out) == (1, "")
    assert one_line(err) == f"jetscan: {tmp_path / 'missing.xml'}: No such file or directory"


# --- pure parts and the follow loop against a stand-in server -----------------------------


@pytest.mark.parametrize(
    ("status", "exit_code", "expected"),
    [
        (v1.ScanStatus.SUCCEEDED, None, 0),
        (v1.ScanStatus.SUCCEEDED, 0, 0),
        (v1.ScanStatus.SUCCEEDED, 1, 1),  # a tool whose code 1 is accepted (sslyze)
        (v1.ScanStatus.FAILED, 2, 2),
        (v1.ScanStatus.FAILED, 0, 1),  # the tool was fine, the scan was not
        (v1.ScanStatus.FAILED, None, 1),
        (v1.ScanStatus.TIMED_OUT, 137, 137),
        (v1.ScanStatus.CANCELLED, None, 1),
        (v1.ScanStatus.FAILED, 300, 1),
    ],
)
def test_exit_status(status: v1.ScanStatus, exit_code: int | None, expected: int) -> None:
    assert usercli.exit_status(v1.Scan(status=status, exit_code=exit_code)) == expected


def test_set_values_are_json_where_they_parse() -> None:
    pairs = [
        ("timing", "4"),
        ("service_detection", "true"),
        ("scripts", '["http-title"]'),
        ("ports", "22"),  # typed as text by the tool: stays "22"
        ("scan_type", "syn"),
        ("odd", "NaN"),
    ]
    assert usercli.config_from_sets("nmap", pairs) == {
        "timing": 4,
        "service_detection": True,
        "scripts": ["http-title"],
        "ports": "22",
        "scan_type": "syn",
        "odd": "NaN",
    }
    with pytest.raises(usercli.UsageError, match="timing"):
        usercli.config_from_sets("nmap", [("timing", "1"), ("timing", "2")])


class StandIn(v1.ScanServiceBase):
    """A ScanService whose answers a test scripts: the follow loop without a real scan."""

    def __init__(self, statuses: list[v1.ScanStatus], events: list[v1.ScanEvent] | None) -> None:
        self.statuses = statuses
        self.events = events
        self.gets = 0

    async def get_scan(self, message: v1.GetScanRequest) -> v1.Scan:
        status = self.statuses[min(self.gets, len(self.statuses) - 1)]
        self.gets += 1
        return v1.Scan(id=message.id, status=status)

    async def watch_scan(self, message: v1.WatchScanRequest) -> AsyncIterator[v1.ScanEvent]:
        if self.events is None:
            raise GRPCError(Status.UNIMPLEMENTED, "WatchScan is not implemented yet")
        for event in self.events:
            yield event


async def follow_against(service: StandIn, as_json: bool, seen: v1.ScanStatus | None = None) -> int:
    server = Server([service])
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        async with EdgeClient(Address("127.0.0.1", port), "t") as client:
            return await usercli.follow(
                client, "s1", as_json=as_json, seen=seen, poll_interval=0.01
            )
    finally:
        server.close()
        await server.wait_closed()


async def test_follow_polls_when_watch_is_unimplemented(capsys: pytest.CaptureFixture[str]) -> None:
    s = v1.ScanStatus
    service = StandIn([s.QUEUED, s.RUNNING, s.RUNNING, s.FAILED], None)
    assert await follow_against(service, as_json=True) == 1
    out: list[dict[str, Any]] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["status"]["status"] for e in out] == [
        "SCAN_STATUS_QUEUED",
        "SCAN_STATUS_RUNNING",
        "SCAN_STATUS_FAILED",
    ]
    assert service.gets == 4


async def test_follow_prints_console_lines(capsys: pytest.CaptureFixture[str]) -> None:
    events = [
        v1.ScanEvent(status=v1.Scan(id="s1", status=v1.ScanStatus.RUNNING)),
        v1.ScanEvent(line=v1.OutputLine(seq=1, stream="stdout", text="Starting Nmap")),
        v1.ScanEvent(line=v1.OutputLine(seq=2, stream="stdout", text="done\n")),
        v1.ScanEvent(status=v1.Scan(id="s1", status=v1.ScanStatus.SUCCEEDED, exit_code=0)),
    ]
    service = StandIn([v1.ScanStatus.SUCCEEDED], events)
    assert await follow_against(service, as_json=False) == 0
    captured = capsys.readouterr()
    assert captured.out == "Starting Nmap\ndone\n"
    assert captured.err == "jetscan: scan s1: succeeded, exit 0\n"
    assert service.gets == 0


async def test_follow_of_an_already_finished_scan_ends(capsys: pytest.CaptureFixture[str]) -> None:
    service = StandIn([v1.ScanStatus.CANCELLED], None)
    assert await follow_against(service, as_json=True, seen=v1.ScanStatus.CANCELLED) == 1
    assert capsys.readouterr().out == ""
