"""`jetscan scan ...` and `jetscan parse ...` as a user runs them: real processes, real edge."""

from __future__ import annotations

import io
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
import pytest

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from edge.client import EdgeClient
from scanners import PARSERS, TOOLS
from tests.conftest import (
    Stack,
    edge_with,
    free_port,
    k8s_settings,
    run_jetscan,
    scan_service,
    wait_status,
)
from tests.corpus import corpus_file
from tests.scanners.dns.test_parse import DNSX_RECORDS, SUBFINDER_RECORDS, pretty
from tests.scanners.nmap.test_parse import HEAD, TAIL, host, port
from tests.scanners.sslyze.test_parse_early import SSLYZE2_COMMANDS, sslyze2, sslyze3_same_facts
from tests.scanners.zap.test_parse import ALERT
from tests.scanners.zap.test_parse import report as zap_report
from workers import tables, usercli

NMAP_WITH_PORTS = "nmap/scb__localhost.xml"
# A whole scan through real processes can outlast the default per-test limit on a loaded
# two-core machine.
WHOLE_SCAN = pytest.mark.timeout(300)


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


@pytest.mark.parametrize(
    ("tool", "content"),
    [
        ("sslyze", sslyze2(**SSLYZE2_COMMANDS)),
        ("sslyze", sslyze3_same_facts().replace(b'"size": 1024', b'"size": "1024"')),
        ("subfinder", pretty(SUBFINDER_RECORDS)),
        ("dnsx", pretty(DNSX_RECORDS)),
        ("zap", json.dumps(zap_report(ALERT).decode()).encode()),
        ("nmap", HEAD + host("10.0.0.1", port(21, inner=b'<service name="ftp\x01"/>')) + TAIL),
    ],
    ids=[
        "sslyze-2-json",
        "sslyze-3.0-strings",
        "subfinder-pretty",
        "dnsx-pretty",
        "zap-double",
        "nmap-control-chars",
    ],
)
async def test_parse_reads_the_shapes_that_were_refused(
    tmp_path: Path, tool: str, content: bytes
) -> None:
    path = tmp_path / f"{tool}.out"
    path.write_bytes(content)
    env = {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}
    code, out, err = await run_jetscan(env, "parse", tool, str(path))
    output = PARSERS[tool](io.BytesIO(content))
    # The sslyze documents list an unreachable target: partial, and said so.
    note = f"jetscan: {path}: {tool} stopped early; these are the findings it got to\n"
    assert (code, err) == (0, note if output.partial else "")
    expected = output.findings
    assert expected, "a shape with findings, so an empty output cannot pass"
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(msgspec.json.encode(f)) for f in expected
    ]


# --- pure parts ---------------------------------------------------------------------------


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


# --- what a new user ran into, against the real edge and roles ----------------------------


def scan_id_from(err: str) -> str:
    """The id in `scan start --follow`'s first note: "jetscan: scan ID: queued (...)"."""
    first = err.splitlines()[0]
    assert first.startswith("jetscan: scan "), err
    return first.removeprefix("jetscan: scan ").split(":", 1)[0]


@WHOLE_SCAN
async def test_follow_of_a_finished_scan_prints_its_whole_console_and_lists_by_address(
    stack: Stack, open_port: int
) -> None:
    env = env_for(stack)
    sets = ("--set", f"ports={open_port}", "--set", "reverse_dns=false")
    code, live, err = await run_jetscan(
        env, "scan", "start", "127.0.0.1", "--tool", "nmap", *sets, "--follow"
    )
    assert code == 0, err
    scan_id = scan_id_from(err)
    assert "Nmap scan report for 127.0.0.1" in live, live
    # Long after it ended: the whole console again, then the end, as the README says.
    code, replay, err = await run_jetscan(env, "scan", "follow", scan_id)
    assert (code, replay) == (0, live)
    assert err == f"jetscan: scan {scan_id}: succeeded, exit 0\n"
    code, out, _ = await run_jetscan(env, "scan", "follow", scan_id, "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [e["line"]["text"].rstrip("\n") for e in events[:-1]] == live.splitlines()
    assert [e["status"]["status"] for e in events if "status" in e] == ["SCAN_STATUS_SUCCEEDED"]
    assert "status" in events[-1]

    # Stored under 127.0.0.1/32 (its network); asking for the address finds it.
    for domain in ("127.0.0.1", "127.0.0.1/32"):
        code, out, _ = await run_jetscan(env, "scan", "list", "--json", "--domain", domain)
        assert code == 0
        assert scan_id in [json.loads(line)["id"] for line in out.splitlines()], domain


async def test_unknown_list_filters_are_errors_naming_them(stack: Stack) -> None:
    env = env_for(stack)
    code, out, err = await run_jetscan(env, "scan", "list", "--tool", "nmapp")
    assert (code, out) == (2, "")
    assert "argument --tool: unknown tool 'nmapp'; expected one of dns, nmap" in err
    code, out, err = await run_jetscan(env, "scan", "list", "--status", "done")
    assert (code, out) == (2, "")
    assert "argument --status: invalid choice: 'done'" in err


@WHOLE_SCAN
async def test_cancel_prints_the_scan_cancelled(stack: Stack) -> None:
    env = env_for(stack)
    slow = ("--set", "ports=1-3", "--set", "timing=0", "--set", "reverse_dns=false")
    code, out, err = await run_jetscan(
        env, "scan", "start", "127.0.0.1", "--tool", "nmap", *slow, "--json"
    )
    assert code == 0, err
    scan_id = json.loads(out)["id"]
    async with scan_service(stack) as scans:
        await wait_status(scans, scan_id, {v1.ScanStatus.RUNNING})
    # --wait: as long as a loaded machine may need to stop the job, not the default 15 s.
    code, out, err = await run_jetscan(env, "scan", "cancel", scan_id, "--wait", "100")
    assert (code, err) == (0, "")
    fields = dict(line.split("  ", 1) for line in out.splitlines())
    assert fields["status"].strip() == "cancelled"


@WHOLE_SCAN
async def test_cancel_says_a_scan_still_stopping_is_being_cancelled(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    async with scan_service(stack) as scans:
        started = await scans.start_scan(
            v1.StartScanRequest(
                target="127.0.0.1",
                tool="nmap",
                config=Struct.from_dict({"ports": "1-3", "timing": 0, "reverse_dns": False}),
            )
        )
        await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
        async with EdgeClient(stack.settings.grpc_addr, stack.admin_token) as client:
            # No time to wait: the job is still stopping when the answer is shown.
            await usercli.cancel(client, started.id, as_json=False, wait=0)
        captured = capsys.readouterr()
        fields = dict(line.split("  ", 1) for line in captured.out.splitlines())
        assert fields["status"].strip() == "cancelling"
        assert captured.err == (
            f"jetscan: scan {started.id}: being cancelled;"
            f" `jetscan scan get {started.id}` shows when it ends\n"
        )
        await wait_status(scans, started.id, {v1.ScanStatus.CANCELLED}, within=60)


@WHOLE_SCAN
async def test_a_request_id_reused_with_other_options_is_refused(
    stack: Stack, open_port: int
) -> None:
    env = env_for(stack)
    key = f"cli-{uuid.uuid4()}"
    base = ("scan", "start", "127.0.0.1", "--tool", "nmap", "--request-id", key, "--json")
    ports = ("--set", f"ports={open_port}", "--set", "reverse_dns=false")
    code, out, err = await run_jetscan(env, *base, *ports)
    assert code == 0, err
    first = json.loads(out)["id"]
    code, out, _ = await run_jetscan(env, *base, *ports)
    assert (code, json.loads(out)["id"]) == (0, first)
    code, out, err = await run_jetscan(env, *base, *ports, "--set", "timing=4")
    assert (code, out) == (1, "")
    assert one_line(err).startswith(
        f"jetscan: ALREADY_EXISTS: request_id: already used for scan {first}"
    )


async def test_a_malformed_scan_id_is_invalid_argument_naming_id(stack: Stack) -> None:
    for command in ("follow", "get", "cancel"):
        code, out, err = await run_jetscan(env_for(stack), "scan", command, "a.b")
        assert (code, out) == (1, ""), command
        assert one_line(err).startswith("jetscan: INVALID_ARGUMENT: id: "), err


async def test_a_syn_scan_without_raw_sockets_is_refused_by_the_cli(
    stack: Stack, open_port: int
) -> None:
    settings = k8s_settings(stack, raw_sockets=False)
    async with edge_with(settings):
        env = env_for(stack, JETSCAN_GRPC_ADDR=str(settings.grpc_addr))
        args = ("scan", "start", "127.0.0.1", "--tool", "nmap", "--set", f"ports={open_port}")
        code, out, err = await run_jetscan(env, *args, "--set", "scan_type=syn")
        assert (code, out) == (1, "")
        assert one_line(err).startswith(
            "jetscan: FAILED_PRECONDITION: config.scan_type: syn scans need raw sockets"
        )
