"""DNS rebinding: the job checks where a name leads, then the tool connects to that address
and never asks DNS again. The test's resolver answers 127.0.0.1 first and 127.0.0.2 after; the
job runs in a mount namespace of its own whose /etc/resolv.conf names that resolver, so a tool
that resolved the name itself would be sent to 127.0.0.2. Every answer is loopback."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from nats.aio.client import Client

from contracts.jobs import job_environ
from contracts.scans import StartScan
from scanners.context import JobContext
from scanners.nmap.command import build_argv as nmap_argv
from scanners.nmap.config import NmapConfig
from scanners.sslyze.command import build_argv as sslyze_argv
from scanners.sslyze.config import SslyzeConfig
from scanners.targets import Target, TargetKind, parse_target
from scanners.zap.command import HOSTS_FILE
from scanners.zap.command import build_argv as zap_argv
from scanners.zap.command import prepare as zap_prepare
from scanners.zap.config import ZapConfig
from tests.conftest import ROOT
from tests.workers import messages
from workers import screening

NAME = "rebind.test"
SCOPE = f"{NAME},127.0.0.1/32"


class Rebinding(BaseResolver):
    """`rebind.test` is 127.0.0.1 on the first A query and 127.0.0.2 on every later one."""

    def __init__(self) -> None:
        self.a_queries = 0
        self._lock = threading.Lock()

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        if qname != NAME:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if QTYPE[request.q.qtype] == "A":
            with self._lock:
                self.a_queries += 1
                address = "127.0.0.1" if self.a_queries == 1 else "127.0.0.2"
            reply.add_answer(RR(NAME, QTYPE.A, rdata=A(address), ttl=0))
        return reply


@pytest.fixture
def resolver() -> Iterator[Rebinding]:
    # resolv.conf names no port: the resolver must be on 53 (root only; the jobs' own
    # namespace needs root as well).
    if os.geteuid() != 0:
        pytest.skip("needs root: a resolver on port 53 and a mount namespace for the job")
    zone = Rebinding()
    quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [
        DNSServer(zone, address="127.0.0.1", port=53, tcp=tcp, logger=quiet)
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    try:
        yield zone
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()


class Listeners:
    """The same port on 127.0.0.1 (the checked address) and 127.0.0.2 (the second answer)."""

    def __init__(self) -> None:
        self.connections = {"127.0.0.1": 0, "127.0.0.2": 0}
        self.port = 0

    async def __aenter__(self) -> Listeners:
        def accept(host: str) -> Any:
            async def on(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self.connections[host] += 1
                writer.close()

            return on

        first = await asyncio.start_server(accept("127.0.0.1"), "127.0.0.1", 0)
        self.port = first.sockets[0].getsockname()[1]
        second = await asyncio.start_server(accept("127.0.0.2"), "127.0.0.2", self.port)
        self.servers = [first, second]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def listeners() -> AsyncIterator[Listeners]:
    async with Listeners() as found:
        yield found


async def _run_job_in_namespace(env: dict[str, str], resolv: Path) -> tuple[int, str]:
    """`python -m workers.job` whose /etc/resolv.conf (only its own) names the test resolver."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$1" -m workers.job'
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        str(resolv),
        sys.executable,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


# ZAP's stand-in: a JVM (started by a script, as zap.sh starts ZAP) that opens an HTTP
# connection to the plan's first URL, resolving its host as ZAP's own JVM would.
FETCH = """
public class Fetch {
    public static void main(String[] args) throws Exception {
        java.net.URLConnection c = new java.net.URL(args[0]).openConnection();
        c.setConnectTimeout(5000);
        try { c.connect(); } catch (java.io.IOException e) { System.err.println(e); }
    }
}
"""
ZAP_SH = """#!/bin/sh
for plan; do :; done
url=$(grep -o -m1 'http://[^ ]*' "$plan")
exec java "$(dirname "$0")/Fetch.java" "$url"
"""


def _zap_stand_in(folder: Path) -> dict[str, str]:
    (folder / "Fetch.java").write_text(FETCH)
    script = folder / "zap.sh"
    script.write_text(ZAP_SH)
    script.chmod(0o755)
    return {"zap.sh": str(script)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "target", "config"),
    [
        ("nmap", NAME, {"ports": "{port}", "reverse_dns": False}),
        ("sslyze", NAME + ":{port}", {"scan_commands": ["certificate_info"]}),
        ("zap", "http://" + NAME + ":{port}/", {"spider_minutes": 1}),
    ],
)
async def test_the_tool_only_ever_contacts_the_address_the_job_checked(
    applied: str,
    nc: Client,
    resolver: Rebinding,
    listeners: Listeners,
    tmp_path: Path,
    tool: str,
    target: str,
    config: dict[str, Any],
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    fill = {"port": str(listeners.port)}
    scan_id = uuid.uuid4().hex
    cmd = StartScan(
        scan_id=scan_id,
        target=target.format(**fill),
        domain=NAME,
        tool=tool,
        config={k: v.format(**fill) if isinstance(v, str) else v for k, v in config.items()},
        deadline_seconds=90,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )
    programs = _zap_stand_in(tmp_path) if tool == "zap" else {}
    env = job_environ(cmd, applied, scope=SCOPE, programs=programs)
    env |= {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    code, stderr = await _run_job_in_namespace(env, resolv)
    [result] = await messages.results(nc.jetstream(), tool, scan_id)
    assert "scan refused" not in result.error, (code, stderr)
    # The job's check asked (and got 127.0.0.1); the tool went there and nowhere else.
    assert resolver.a_queries >= 1
    assert listeners.connections["127.0.0.1"] >= 1, (code, stderr, result.error)
    assert listeners.connections["127.0.0.2"] == 0


JOB = JobContext(workdir=Path("/w"), pinned="127.0.0.1")
ANY = frozenset(TargetKind)


def target(text: str) -> Target:
    return parse_target(text, allowed_kinds=ANY)


def test_nmap_scans_the_checked_address_and_sslyze_names_it() -> None:
    argv = nmap_argv(NmapConfig(), target(NAME), JOB)
    assert argv[-1] == "127.0.0.1" and NAME not in argv
    six = nmap_argv(NmapConfig(), target(NAME), JobContext(workdir=Path("/w"), pinned="::1"))
    assert six[-2:] == ["-6", "::1"]
    argv = sslyze_argv(SslyzeConfig(), target(f"{NAME}:8443"), JOB)
    assert argv[-2:] == ["--", f"{NAME}:8443{{127.0.0.1}}"]
    v6 = JobContext(workdir=Path("/w"), pinned="::1")
    assert sslyze_argv(SslyzeConfig(), target(NAME), v6)[-1] == f"{NAME}:443{{[::1]}}"
    # Not pinned (an address target): as before.
    assert (
        sslyze_argv(SslyzeConfig(), target("127.0.0.1"), JobContext(workdir=Path("/w")))[-1]
        == "127.0.0.1:443"
    )


def test_zaps_jvm_resolves_the_name_from_a_hosts_file_of_the_checked_address() -> None:
    url = target(f"http://{NAME}:8080/")
    argv = zap_argv(ZapConfig(), url, JOB)
    assert argv[:2] == ["env", f"JAVA_TOOL_OPTIONS=-Djdk.net.hosts.file=/w/{HOSTS_FILE}"]
    assert zap_prepare(ZapConfig(), url, JOB)[HOSTS_FILE] == f"127.0.0.1 {NAME}\n".encode()


@pytest.mark.parametrize(
    ("found", "pinned"),
    [
        (["127.0.0.1", "::1"], "127.0.0.1"),
        (["::1"], "::1"),
        ([], ""),
        (["::2", "10.0.0.1"], "10.0.0.1"),
    ],
)
def test_the_pinned_address_prefers_ipv4(found: list[str], pinned: str) -> None:
    assert screening.pin(found) == pinned
