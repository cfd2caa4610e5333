from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path, PurePath

import pytest

from contracts.findings import Severity
from contracts.sslyze import SslyzeRun
from scanners import TOOLS
from scanners.context import JobContext
from scanners.errors import TargetError
from scanners.sslyze.command import build_argv
from scanners.sslyze.config import SslyzeConfig
from scanners.targets import Target, TargetKind, parse_target
from tests.scanners.sslyze.tls_server import self_signed, serving

JOB = JobContext(workdir=PurePath("/work"))
HEAD = [sys.executable, "-m", "sslyze", "--mozilla_config=disable", "--json_out"]
HEAD.append("/work/sslyze.json")
EVERY_CHECK = [
    "--certinfo",
    "--sslv2",
    "--sslv3",
    "--tlsv1",
    "--tlsv1_1",
    "--tlsv1_2",
    "--tlsv1_3",
    "--heartbleed",
    "--robot",
    "--openssl_ccs",
    "--compression",
    "--reneg",
    "--fallback",
    "--early_data",
]


def _target(text: str) -> Target:
    return parse_target(text, allowed_kinds=TOOLS["sslyze"].target_kinds)


@pytest.mark.parametrize(
    ("target", "server"),
    [
        ("example.com", "example.com:443"),
        ("Example.COM:8443", "example.com:8443"),
        ("127.0.0.1", "127.0.0.1:443"),
        ("127.0.0.1:4433", "127.0.0.1:4433"),
        ("::1", "[::1]:443"),
        ("[2001:db8::1]:993", "[2001:db8::1]:993"),
    ],
)
def test_every_check_runs_by_default_against_host_and_port(target: str, server: str) -> None:
    assert build_argv(SslyzeConfig(), _target(target), JOB) == [*HEAD, *EVERY_CHECK, "--", server]


def test_options_become_flags_in_a_fixed_order() -> None:
    config = SslyzeConfig(
        scan_commands=("robot", "certificate_info"),
        server_name="www.example.com",
        starttls="smtp",
        slow_connection=True,
    )
    assert build_argv(config, _target("mail.example.com:25"), JOB) == [
        *HEAD,
        "--robot",
        "--certinfo",
        "--sni",
        "www.example.com",
        "--starttls",
        "smtp",
        "--slow_connection",
        "--",
        "mail.example.com:25",
    ]


def test_a_configured_python_runs_sslyze() -> None:
    job = JobContext(workdir=PurePath("/w"), programs={"python": "/opt/sslyze/bin/python"})
    argv = build_argv(SslyzeConfig(scan_commands=("heartbleed",)), _target("a.example"), job)
    assert argv[:4] == ["/opt/sslyze/bin/python", "-m", "sslyze", "--mozilla_config=disable"]
    assert argv[5] == "/w/sslyze.json"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("https://example.com/", "url targets"), ("10.0.0.0/24", "cidr targets")],
)
def test_urls_and_networks_are_not_sslyze_targets(text: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        parse_target(text, allowed_kinds=TOOLS["sslyze"].target_kinds)


@pytest.mark.parametrize(
    "target",
    [
        Target(kind=TargetKind.HOST, value="--update_trust_stores", host="x", domain="x"),
        Target(kind=TargetKind.HOST, value="a.com;id", host="a.com", domain="a.com"),
        Target(kind=TargetKind.ENDPOINT, value="A.com:443", host="a.com", domain="a.com", port=443),
        Target(kind=TargetKind.ENDPOINT, value="a.com:443", host="b.com", domain="b.com", port=443),
        Target(kind=TargetKind.URL, value="https://a.com/", host="a.com", domain="a.com"),
    ],
)
def test_targets_that_never_went_through_parse_target_are_rechecked(target: Target) -> None:
    with pytest.raises(TargetError):
        build_argv(SslyzeConfig(), target, JOB)


@pytest.mark.slow
def test_real_sslyze_finds_a_self_signed_certificate_with_the_wrong_name(tmp_path: Path) -> None:
    # The certificate names only "localhost", and the scan is of 127.0.0.1.
    context = self_signed(tmp_path, ("localhost",), ())
    spec = TOOLS["sslyze"]
    with serving(context) as port:
        argv = spec.build_argv(SslyzeConfig(), _target(f"127.0.0.1:{port}"), JobContext(tmp_path))
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert done.returncode in spec.accepted_exit_codes, done.stderr.decode()
    assert f"SCAN RESULTS FOR 127.0.0.1:{port}" in done.stdout.decode()

    with (tmp_path / spec.output_file).open("rb") as stream:
        output = spec.parse_stream(stream)
    assert not output.partial
    assert isinstance(output.data, SslyzeRun)
    [server] = output.data.servers
    assert (server.hostname, server.port, server.connected) == ("127.0.0.1", port, True)
    supported = {p.version for p in server.protocols if p.supported}
    assert supported >= {"TLS 1.2"} and not supported & {"SSL 2.0", "SSL 3.0"}
    assert server.vulnerabilities.heartbleed is False
    [deployment] = server.certificate_deployments
    assert deployment.received_chain[0].dns_names == ("localhost",)
    assert deployment.hostname_matches is False
    titles = {f.title: f for f in output.findings}
    assert titles["Certificate not trusted"].severity is Severity.HIGH
    assert titles["Certificate does not match the server name"].severity is Severity.HIGH
    assert all(f.host == "127.0.0.1" and f.port == port for f in output.findings)


def test_sslyze_is_registered_with_its_pieces() -> None:
    spec = TOOLS["sslyze"]
    assert spec.config_type is SslyzeConfig
    assert spec.output_file == "sslyze.json"
    # Only 0: the Mozilla check, the one source of exit 1 besides a crash, is disabled.
    assert spec.accepted_exit_codes == frozenset({0})
    assert spec.target_kinds == {TargetKind.HOST, TargetKind.IP, TargetKind.ENDPOINT}
    assert 0 < spec.default_deadline_seconds <= spec.max_deadline_seconds


@pytest.mark.slow
def test_real_sslyze_against_a_closed_port_is_a_partial_run_without_findings(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A free port nothing listens on: connections are refused at once.
    spec = TOOLS["sslyze"]
    config = SslyzeConfig(scan_commands=("certificate_info",))
    argv = spec.build_argv(config, _target(f"127.0.0.1:{port}"), JobContext(tmp_path))
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert done.returncode in spec.accepted_exit_codes, done.stderr.decode()
    output = spec.parse((tmp_path / spec.output_file).read_bytes())
    assert output.partial and output.findings == ()
    assert isinstance(output.data, SslyzeRun)
    [server] = output.data.servers
    assert not server.connected
    assert "rejected" in server.error.lower()
