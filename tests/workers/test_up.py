"""`jetscan up` as a user runs it: a real process with embedded NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from tests.conftest import ROOT, free_port, run_jetscan

pytestmark = pytest.mark.slow


def base_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(home),
        "JETSCAN_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "JETSCAN_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "JETSCAN_NATS_PORT": "0",
        "JETSCAN_METRICS_ADDR": f"127.0.0.1:{free_port()}",
    }


def processes_under(home: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        if str(home) in cmdline and state != "Z":
            found.append(f"{pid}: {cmdline}")
    return found


class Running:
    def __init__(self, proc: asyncio.subprocess.Process, env: dict[str, str], banner: str) -> None:
        self.proc = proc
        self.env = env
        self.banner = banner

    @property
    def grpc(self) -> tuple[str, int]:
        host, port = self.env["JETSCAN_GRPC_ADDR"].rsplit(":", 1)
        return host, int(port)

    async def stop(self, signum: int = signal.SIGINT) -> int:
        self.proc.send_signal(signum)
        return await asyncio.wait_for(self.proc.wait(), 60)


async def start(env: dict[str, str], stderr: Path | None = None) -> Running:
    """`jetscan up`, once it has printed its banner; its log goes to `stderr` if given."""
    with open(stderr or os.devnull, "wb") as err:  # noqa: ASYNC230 - opening a file is instant
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            "up",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.startswith(b"jetscan is up: gRPC "), line
    assert env["JETSCAN_GRPC_ADDR"].encode() in line
    assert env["JETSCAN_HTTP_ADDR"].encode() in line
    return Running(proc, env, line.decode())


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "home"
    assert processes_under(tmp_path) == []


async def serving_within(addr: tuple[str, int], seconds: float) -> None:
    ch = Channel(*addr)
    try:
        stub = HealthStub(ch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            reply = await stub.Check(HealthCheckRequest(service="jetscan.v1.ScanService"))
            if reply.status == HealthCheckResponse.SERVING:
                return
            assert loop.time() < deadline, "ScanService not SERVING in time"
            await asyncio.sleep(0.2)
    finally:
        ch.close()


async def reflection(addr: tuple[str, int], *args: str) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.edge.reflection_client",
        f"{addr[0]}:{addr[1]}",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    result: dict[str, object] = json.loads(out)
    return result


async def test_up_serves_then_stops_clean_and_restarts_on_the_same_data(home: Path) -> None:
    env = base_env(home)
    run = await start(env)
    try:
        await serving_within(run.grpc, 20)
        token_file = home / "admin.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        admin = token_file.read_text().strip()
        services = (await reflection(run.grpc, "list"))["services"]
        assert isinstance(services, list)
        for s in (
            "jetscan.v1.ScanService",
            "jetscan.v1.ReportService",
            "jetscan.v1.ScheduleService",
            "grpc.health.v1.Health",
        ):
            assert s in services
        call = ["call", "jetscan.v1.ScanService/ListScans", "{}"]
        assert await reflection(run.grpc, *call, admin) == {"reply": {}}
        assert (await reflection(run.grpc, *call))["code"] == "UNAUTHENTICATED"

        code, out, _ = await run_jetscan(env, "token", "create", "--role", "viewer", "--name", "ci")
        assert code == 0 and out.startswith("jst_")
        viewer = out.strip()
        code, out, _ = await run_jetscan(env, "streams", "apply")
        assert (code, out) == (0, "nothing to change\n")
    finally:
        # SIGHUP (the terminal closed) stops it as cleanly as Ctrl-C, servers included.
        assert await run.stop(signal.SIGHUP) == 0
    assert processes_under(home) == []

    run = await start(base_env(home) | {"JETSCAN_GRPC_ADDR": env["JETSCAN_GRPC_ADDR"]})
    try:
        await serving_within(run.grpc, 20)
        assert token_file.read_text().strip() == admin
        call = ["call", "jetscan.v1.ScanService/ListScans", "{}"]
        assert await reflection(run.grpc, *call, viewer) == {"reply": {}}
    finally:
        assert await run.stop() == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("JETSCAN_GRPC_ADDR", "nonsense"), ("JETSCAN_EXECUTOR", "docker"), ("JETSCAN_NATS_URL", "x")],
)
async def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = base_env(tmp_path) | {variable: value}
    code, out, err = await run_jetscan(env, "up")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"jetscan: {variable}: ")
    assert processes_under(tmp_path) == []


async def test_cli_commands_without_a_running_stack_say_so(tmp_path: Path) -> None:
    code, _, err = await run_jetscan(base_env(tmp_path), "token", "create", "--role", "admin")
    assert code == 1
    assert "no NATS to talk to" in err and err.count("\n") == 1
