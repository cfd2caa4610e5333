"""The scan job as a launcher runs it: a real process, real nmap, real NATS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts import subjects, wire
from contracts.jobs import job_environ
from contracts.nmap import NmapRun
from contracts.output import EndOfOutput, OutputLine
from contracts.results import Heartbeat
from contracts.scans import ScanEvent, ScanStatus, StartScan
from handlers import topology
from scanners import TOOLS
from tests.conftest import finish_job, free_port, start_job
from tests.workers import messages, nmapxml
from workers import job, jobenv, jobresult
from workers.embedded import NatsServer
from workers.jobresult import Scanned, Verdict

NMAP = TOOLS["nmap"]


@pytest.mark.parametrize(
    ("returncode", "status"), [(0, 0), (1, 1), (255, 255), (-15, 143), (-9, 137), (-2, 130)]
)
def test_exit_status_reports_signals_as_the_shell_does(returncode: int, status: int) -> None:
    assert job.exit_status(returncode) == status


def test_the_artifact_is_named_after_scan_and_file() -> None:
    assert jobresult.artifact_name("abc", "nmap.xml") == "scans/abc/nmap.xml"
    with pytest.raises(ValueError, match="subject token"):
        jobresult.artifact_name("../x", "nmap.xml")


def test_empty_data_is_the_tools_data_with_every_default() -> None:
    assert jobresult.empty_data("nmap") == NmapRun()


# How the output parsed: (cut short, why it did not parse).
DONE = (False, "")
CUT = (True, "")
BAD = (False, "bad xml")


@pytest.mark.parametrize(
    ("scanned", "parsed", "verdict"),
    [
        (Scanned(exit_code=0), DONE, Verdict(0, "", False)),
        (Scanned(exit_code=0), CUT, Verdict(0, "", True)),
        (Scanned(exit_code=0), BAD, Verdict(4, "bad xml", True)),
        (Scanned(exit_code=1), DONE, Verdict(3, "nmap exited with code 1", True)),
        (Scanned(exit_code=1), BAD, Verdict(3, "nmap exited with code 1; bad xml", True)),
        (Scanned(exit_code=137), CUT, Verdict(3, "nmap exited with code 137", True)),
        (
            Scanned(exit_code=127, start_error="could not start nmap: No such file"),
            BAD,
            Verdict(3, "could not start nmap: No such file; bad xml", True),
        ),
        (
            Scanned(exit_code=143, deadline_hit=True),
            CUT,
            Verdict(124, "nmap was stopped at the scan's deadline", True),
        ),
        (
            Scanned(exit_code=0, deadline_hit=True),
            BAD,
            Verdict(124, "nmap was stopped at the scan's deadline; bad xml", True),
        ),
    ],
)
def test_judge_decides_exit_code_error_and_partial(
    scanned: Scanned, parsed: tuple[bool, str], verdict: Verdict
) -> None:
    assert jobresult.judge(NMAP, scanned, *parsed) == verdict


def job_env(nats_url: str, config: dict[str, Any], **extra: str) -> tuple[str, dict[str, str]]:
    scan_id = uuid.uuid4().hex
    cmd = StartScan(
        scan_id=scan_id,
        target="127.0.0.1",
        domain="127.0.0.1/32",
        tool="nmap",
        config=config,
        deadline_seconds=600,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}
    return scan_id, {**job_environ(cmd, nats_url), **environ}


async def test_a_scan_streams_its_console_and_publishes_one_result(
    applied: str, nc: Client, open_port: int
) -> None:
    scan_id, env = job_env(applied, {"ports": str(open_port), "reverse_dns": False})
    proc = await start_job(env)
    code, stderr = await finish_job(proc)
    assert code == jobresult.EXIT_OK, stderr
    js = nc.jetstream()

    running = await js.get_last_msg("EVENTS", subjects.scan_event(scan_id, "running"))
    event = messages.decode(running, ScanEvent)
    assert (event.scan_id, event.status) == (scan_id, ScanStatus.RUNNING)

    output = await messages.output(js, scan_id)
    assert [m.seq for m in output] == list(range(1, len(output) + 1))
    assert all(isinstance(m, OutputLine) for m in output[:-1])
    end = output[-1]
    assert isinstance(end, EndOfOutput)
    assert end.exit_code == 0
    texts = [m.text for m in output if isinstance(m, OutputLine)]
    assert f"Discovered open port {open_port}/tcp on 127.0.0.1" in texts

    [result] = await messages.results(js, "nmap", scan_id)
    assert (result.tool, result.target, result.exit_code) == ("nmap", "127.0.0.1", 0)
    assert (result.partial, result.error) == (False, "")
    assert [(f.host, f.port, f.protocol) for f in result.findings] == [
        ("127.0.0.1", open_port, "tcp")
    ]
    assert [p.portid for h in result.data.hosts for p in h.ports] == [open_port]

    assert result.artifact == f"scans/{scan_id}/nmap.xml"
    stored = await (await js.object_store("artifacts")).get(result.artifact)
    assert stored.data is not None
    assert stored.data.startswith(b"<?xml")
    assert b"</nmaprun>" in stored.data

    beat = await (await js.key_value("heartbeats")).get(scan_id)
    assert beat.value is not None
    heartbeat = msgspec.json.decode(beat.value, type=Heartbeat)
    assert (heartbeat.scan_id, heartbeat.pid) == (scan_id, proc.pid)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JETSCAN_TOOL", None),
        ("JETSCAN_CONFIG", '{"ports": "22", "args": "-sU"}'),
        ("JETSCAN_TARGET", "127.0.0.1;reboot"),
        ("JETSCAN_DEADLINE_SECONDS", "soon"),
    ],
)
async def test_a_bad_env_exits_2_with_one_line_and_publishes_nothing(
    applied: str, nc: Client, variable: str, value: str | None
) -> None:
    scan_id, env = job_env(applied, {"ports": "22"})
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    code, stderr = await finish_job(await start_job(env))

    assert code == jobresult.EXIT_BAD_ENV
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"jetscan job: {variable}: ")
    js = nc.jetstream()
    with pytest.raises(NotFoundError):
        await js.get_last_msg("EVENTS", subjects.scan_events(scan_id))
    assert await messages.output(js, scan_id) == []
    with pytest.raises(KeyNotFoundError):
        await (await js.key_value("heartbeats")).get(scan_id)


def children(pid: int) -> list[tuple[int, int]]:
    """(pid, process group) of every child process of `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append((int(stat.parent.name), int(fields[2])))
    return found


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# nmap -T0 waits five minutes between probes: a scanner that reliably outlives any test.
SLOW = {"ports": "1-3", "timing": 0, "reverse_dns": False}


async def test_sigterm_stops_the_scanner_group_and_ends_the_console(
    applied: str, nc: Client
) -> None:
    js = nc.jetstream()
    scan_id, env = job_env(applied, SLOW)
    sub = await js.subscribe(subjects.scan_output(scan_id), ordered_consumer=True)
    proc = await start_job(env)
    try:
        await sub.next_msg(timeout=60)  # the scanner has started and is talking
    finally:
        await sub.unsubscribe()
    [(scanner, group)] = children(proc.pid)
    assert group == scanner, "the scanner leads its own process group"

    proc.send_signal(signal.SIGTERM)
    code, stderr = await finish_job(proc)

    assert code == 128 + signal.SIGTERM, stderr
    assert not group_exists(group)
    output = await messages.output(js, scan_id)
    assert [m.seq for m in output] == list(range(1, len(output) + 1))
    assert isinstance(output[-1], EndOfOutput)
    assert await messages.results(js, "nmap", scan_id) == []


async def test_at_the_deadline_the_scanner_is_stopped_and_a_partial_result_published(
    applied: str, nc: Client
) -> None:
    js = nc.jetstream()
    scan_id, env = job_env(applied, SLOW, JETSCAN_DEADLINE_SECONDS="1")
    code, stderr = await finish_job(await start_job(env))

    assert code == jobresult.EXIT_DEADLINE, stderr
    output = await messages.output(js, scan_id)
    assert isinstance(output[-1], EndOfOutput)
    [result] = await messages.results(js, "nmap", scan_id)
    assert result.partial
    assert result.error.startswith("nmap was stopped at the scan's deadline")
    assert result.findings == ()


async def test_a_scanner_that_cannot_start_exits_3_with_an_error_result(
    applied: str, nc: Client
) -> None:
    js = nc.jetstream()
    scan_id, env = job_env(applied, {"ports": "22"}, PATH="/nonexistent")
    code, stderr = await finish_job(await start_job(env))

    assert code == jobresult.EXIT_SCANNER_FAILED, stderr
    [line, end] = await messages.output(js, scan_id)
    assert isinstance(line, OutputLine)
    assert line.text == "[jetscan] could not start nmap: No such file or directory"
    assert isinstance(end, EndOfOutput)
    assert end.exit_code == 127
    [result] = await messages.results(js, "nmap", scan_id)
    assert (result.exit_code, result.partial, result.artifact) == (127, True, "")
    assert result.error == "could not start nmap: No such file or directory; nmap wrote no nmap.xml"
    assert result.data == NmapRun()


async def test_a_configured_program_path_is_the_one_run(applied: str, nc: Client) -> None:
    js = nc.jetstream()
    scan_id, env = job_env(
        applied, {"ports": "22"}, JETSCAN_PROGRAMS="nmap=/nonexistent/bin/nmap-7.93"
    )
    code, stderr = await finish_job(await start_job(env))

    assert code == jobresult.EXIT_SCANNER_FAILED, stderr
    [line, _] = await messages.output(js, scan_id)
    assert isinstance(line, OutputLine)
    assert line.text == (
        "[jetscan] could not start /nonexistent/bin/nmap-7.93: No such file or directory"
    )


async def test_an_unreachable_bus_exits_5_before_running_anything() -> None:
    env = jobenv.parse(job_env(f"nats://127.0.0.1:{free_port()}", {"ports": "22"})[1])
    assert await job.run(env, {}, connect_attempts=1) == jobresult.EXIT_NATS


@pytest.fixture
async def own_js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    """JetStream of a server of the test's own: results for scans no database knows would
    otherwise wait in the session's RESULTS for other tests' ingest to give up on them."""
    server = NatsServer(tmp_path / "nats", port=0)
    client = await nats.connect(await server.start())
    try:
        await topology.apply(client.jetstream(), topology.load())
        yield client.jetstream()
    finally:
        await client.drain()
        await server.stop()


async def test_a_result_too_big_for_one_message_goes_out_in_parts_with_its_data_stored(
    own_js: JetStreamContext, tmp_path: Path
) -> None:
    # 4 KiB parts instead of 4 MiB: a few hundred hosts then behave as a huge scan does.
    xml = nmapxml.scan_of(300)
    scan_id, environ = job_env("nats://127.0.0.1:1", {"ports": "22"})
    (tmp_path / NMAP.output_file).write_bytes(xml)
    js = own_js

    code = await jobresult.finish(
        js, jobenv.parse(environ), tmp_path, Scanned(exit_code=0), part_bytes=4096
    )

    assert code == jobresult.EXIT_OK
    parts = await messages.results(js, "nmap", scan_id)
    assert len(parts) > 20
    assert all(len(wire.encode(p)) <= 4096 for p in parts)
    assert [(p.part, p.parts) for p in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    whole = NMAP.parse(xml)
    assert wire.encode([f for p in parts for f in p.findings]) == wire.encode(whole.findings)
    # The tool data is over a part's size: each part names it, none carries it.
    assert {p.data_artifact for p in parts} == {f"scans/{scan_id}/result-data.json"}
    assert {p.data for p in parts} == {NmapRun()}
    stored = await (await js.object_store("artifacts")).get(parts[0].data_artifact)
    assert stored.data is not None
    assert msgspec.json.decode(stored.data, type=NmapRun) == whole.data
    assert len({(p.partial, p.error, p.exit_code, p.finished_at) for p in parts}) == 1
    assert (parts[0].partial, parts[0].error, parts[0].exit_code) == (False, "", 0)
    # The scanner's version, as its output names it, on every part though no part has the data.
    assert whole.data.version
    assert {p.scanner_version for p in parts} == {whole.data.version}


async def test_a_small_result_is_one_message_with_its_data(
    own_js: JetStreamContext, tmp_path: Path
) -> None:
    scan_id, environ = job_env("nats://127.0.0.1:1", {"ports": "22"})
    (tmp_path / NMAP.output_file).write_bytes(nmapxml.scan_of(3))
    js = own_js

    code = await jobresult.finish(js, jobenv.parse(environ), tmp_path, Scanned(exit_code=0))

    assert code == jobresult.EXIT_OK
    [result] = await messages.results(js, "nmap", scan_id)
    assert (result.part, result.parts, result.data_artifact) == (1, 1, "")
    assert [f.host for f in result.findings] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert [h.addresses for h in result.data.hosts] == [
        h.addresses for h in NMAP.parse(nmapxml.scan_of(3)).data.hosts
    ]


async def test_output_that_does_not_parse_is_one_partial_result_with_the_reason(
    own_js: JetStreamContext, tmp_path: Path
) -> None:
    scan_id, environ = job_env("nats://127.0.0.1:1", {"ports": "22"})
    (tmp_path / NMAP.output_file).write_bytes(b"<html>not nmap</html>")
    js = own_js

    code = await jobresult.finish(js, jobenv.parse(environ), tmp_path, Scanned(exit_code=0))

    assert code == jobresult.EXIT_BAD_OUTPUT
    [result] = await messages.results(js, "nmap", scan_id)
    assert (result.partial, result.findings, result.data) == (True, (), NmapRun())
    assert result.error.startswith("output does not parse: ")
    assert result.artifact == f"scans/{scan_id}/nmap.xml"


async def test_a_scanner_printing_without_end_is_cut_at_the_console_cap(
    applied: str, nc: Client, tmp_path: Path
) -> None:
    # A hostile "nmap": one 100 MB line without a break, then lines as fast as it can.
    flood = tmp_path / "nmap"
    flood.write_text(
        "#!/bin/sh\nhead -c 100000000 /dev/zero | tr '\\0' x\necho\nexec yes 'another line'\n"
    )
    flood.chmod(0o755)
    cap = 256 * 1024
    js = nc.jetstream()
    scan_id, env = job_env(
        applied,
        {"ports": "22"},
        JETSCAN_PROGRAMS=f"nmap={flood}",
        JETSCAN_DEADLINE_SECONDS="4",
        JETSCAN_CONSOLE_MAX_BYTES=str(cap),
    )
    proc = await start_job(env)
    peak_kib = 0
    while proc.returncode is None:
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            rss = next(line for line in status if line.startswith("VmRSS:"))
            peak_kib = max(peak_kib, int(rss.split()[1]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 0.05)
    code, stderr = await finish_job(proc)

    assert code == jobresult.EXIT_DEADLINE, stderr
    output = await messages.output(js, scan_id)
    assert [m.seq for m in output] == list(range(1, len(output) + 1))
    lines = [m for m in output if isinstance(m, OutputLine)]
    assert lines[0].text == "x" * 65536 + " [jetscan: line cut at 65536 bytes]"
    cut = [m for m in lines if m.text.startswith("[jetscan] console cut here")]
    assert len(cut) == 1, [m.text[:80] for m in lines if m.text.startswith("[jetscan]")]
    shown = lines[: lines.index(cut[0])]
    assert sum(len(m.text.encode()) for m in shown) <= cap + 64
    assert lines[-1].text.startswith("[jetscan] ")
    assert "console line(s)" in lines[-1].text and "past the cap were not shown" in lines[-1].text
    assert isinstance(output[-1], EndOfOutput)
    # Memory stays at a chunk and a line, whatever the scanner prints.
    assert 0 < peak_kib < 200 * 1024, f"the job's RSS reached {peak_kib} KiB"
