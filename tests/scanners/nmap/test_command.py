from __future__ import annotations

import asyncio
import shutil
from pathlib import Path, PurePath

import pytest

from scanners import TOOLS, decode_config
from scanners.context import JobContext
from scanners.errors import TargetError
from scanners.nmap.command import build_argv
from scanners.nmap.config import NmapConfig
from scanners.targets import Target, TargetKind, parse_target

WORKDIR = JobContext(workdir=PurePath("/work"))
HEAD = [
    "nmap",
    "-oX",
    "/work/nmap.xml",
    "--no-stylesheet",
    "-v",
    "--noninteractive",
    "--stats-every",
    "30s",
]


def _target(text: str) -> Target:
    return parse_target(text, allowed_kinds=TOOLS["nmap"].target_kinds)


@pytest.mark.parametrize(
    ("config", "target", "tail"),
    [
        (NmapConfig(), "example.com", ["-sT", "-T3", "-Pn", "example.com"]),
        (NmapConfig(), "10.0.0.5", ["-sT", "-T3", "-Pn", "10.0.0.5"]),
        (NmapConfig(), "10.0.0.0/24", ["-sT", "-T3", "10.0.0.0/24"]),
        (NmapConfig(), "::1", ["-sT", "-T3", "-Pn", "-6", "::1"]),
        (NmapConfig(), "2001:db8::/120", ["-sT", "-T3", "-6", "2001:db8::/120"]),
        (
            NmapConfig(scan_type="syn", timing=4, ports="22,80,8000-8100"),
            "example.com",
            ["-sS", "-T4", "-Pn", "-p", "22,80,8000-8100", "example.com"],
        ),
        (
            NmapConfig(
                service_detection=True,
                scripts=("default", "vulners"),
                host_timeout_seconds=600,
                reverse_dns=False,
            ),
            "10.0.0.5",
            [
                "-sT",
                "-T3",
                "-Pn",
                "-sV",
                "--script=default,vulners",
                "--host-timeout",
                "600s",
                "-n",
                "10.0.0.5",
            ],
        ),
    ],
)
def test_argv(config: NmapConfig, target: str, tail: list[str]) -> None:
    assert build_argv(config, _target(target), WORKDIR) == HEAD + tail


def test_the_target_appears_once_and_last() -> None:
    argv = build_argv(
        NmapConfig(ports="1-100", scripts=("banner",)), _target("a.example.com"), WORKDIR
    )
    assert argv[-1] == "a.example.com"
    assert argv.count("a.example.com") == 1


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (Target(kind=TargetKind.HOST, value="-iL/etc/passwd", host="x", domain="x"), "'-'"),
        (Target(kind=TargetKind.HOST, value="a.com;id", host="x", domain="x"), "metacharacter"),
        (Target(kind=TargetKind.HOST, value="A.com", host="x", domain="x"), "normalised"),
        (Target(kind=TargetKind.IP, value="example.com", host="x", domain="x"), "normalised"),
        (Target(kind=TargetKind.URL, value="http://a.com/", host="a.com", domain="a.com"), "url"),
    ],
)
def test_targets_that_never_went_through_parse_target_are_rechecked(
    target: Target, reason: str
) -> None:
    with pytest.raises(TargetError, match=reason):
        build_argv(NmapConfig(), target, WORKDIR)


def test_a_large_cidr_accepted_upstream_is_not_refused_again() -> None:
    wide = parse_target("10.0.0.0/16", allowed_kinds={TargetKind.CIDR}, ipv4_min_prefix=16)
    assert build_argv(NmapConfig(), wide, WORKDIR)[-1] == "10.0.0.0/16"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
async def test_real_nmap_connect_scan_reports_a_listening_port(tmp_path: Path) -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spec = TOOLS["nmap"]
    # reverse_dns off: the scan of 127.0.0.1 then sends nothing anywhere but 127.0.0.1.
    config = decode_config("nmap", {"ports": str(port), "reverse_dns": False, "timing": 4})
    argv = spec.build_argv(config, _target("127.0.0.1"), JobContext(workdir=tmp_path))
    async with server:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode in spec.accepted_exit_codes, stderr.decode()
    assert f"Discovered open port {port}/tcp on 127.0.0.1" in stdout.decode()

    with (tmp_path / spec.output_file).open("rb") as xml:
        output = spec.parse_stream(xml)

    assert not output.partial
    assert output.data.args.startswith("nmap -oX")
    [host] = output.data.hosts
    assert host.status == "up"
    [finding] = [f for f in output.findings if f.port == port]
    assert (finding.host, finding.protocol, finding.severity) == ("127.0.0.1", "tcp", "info")
    assert finding.title.startswith(f"Open port {port}/tcp")
    assert output == spec.parse((tmp_path / spec.output_file).read_bytes())
