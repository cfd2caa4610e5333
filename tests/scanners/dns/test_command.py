from __future__ import annotations

import sys
from pathlib import PurePosixPath

import msgspec
import pytest

from scanners import PARSERS, TOOLS, decode_config
from scanners.context import JobContext
from scanners.dns import parse
from scanners.dns.command import (
    build_argv,
    dnsx_argv,
    resolver_addresses,
    subfinder_argv,
)
from scanners.dns.config import DnsConfig
from scanners.errors import TargetError
from scanners.targets import Target, TargetKind, parse_target

JOB = JobContext(
    workdir=PurePosixPath("/work/scan-1"),
    programs={"subfinder": "/opt/pd/subfinder"},
    scope="example.com, 10.0.0.0/8",
)


def host(text: str) -> Target:
    return parse_target(text, allowed_kinds={TargetKind.HOST})


def test_dns_is_registered_with_its_pieces() -> None:
    spec = TOOLS["dns"]
    assert spec.config_type is DnsConfig
    assert spec.build_argv is build_argv
    assert spec.output_file == "recon.jsonl"
    assert spec.accepted_exit_codes == frozenset({0})
    assert spec.target_kinds == {TargetKind.HOST}
    assert 0 < spec.default_deadline_seconds <= spec.max_deadline_seconds
    assert PARSERS["dns"] is parse.parse_stream
    assert PARSERS["subfinder"] is parse.parse_subfinder_stream
    assert PARSERS["dnsx"] is parse.parse_dnsx_stream
    assert set(TOOLS) <= set(PARSERS)


def test_the_job_runs_the_recon_runner_with_everything_as_arguments() -> None:
    config = DnsConfig(resolvers=("127.0.0.1:5353",))
    argv = build_argv(config, host("Example.COM"), JOB)
    assert argv[:3] == [sys.executable, "-m", "scanners.dns.recon"]
    assert argv[3:] == [
        "--domain=example.com",
        f"--config={msgspec.json.encode(config).decode()}",
        "--scope=example.com, 10.0.0.0/8",
        "--subfinder=/opt/pd/subfinder",
        # Not configured: found on PATH by name, or not at all (then dnspython resolves).
        "--dnsx=dnsx",
        "--output=/work/scan-1/recon.jsonl",
    ]
    assert msgspec.json.decode(argv[4].partition("=")[2], type=DnsConfig) == config


@pytest.mark.parametrize(
    "target",
    [
        Target(kind=TargetKind.HOST, value="-oJ", host="-oJ", domain="-oJ"),
        Target(kind=TargetKind.HOST, value="Example.com", host="x", domain="x"),
        Target(kind=TargetKind.HOST, value="a.com,b.com", host="x", domain="x"),
        Target(kind=TargetKind.URL, value="http://example.com/", host="example.com", domain="x"),
    ],
)
def test_a_target_that_did_not_come_through_parse_target_is_refused(target: Target) -> None:
    with pytest.raises(TargetError):
        build_argv(DnsConfig(), target, JOB)


def test_subfinder_argv() -> None:
    assert subfinder_argv(DnsConfig(), "example.com", "subfinder", "/w/s.jsonl") == [
        "subfinder",
        "-d",
        "example.com",
        "-oJ",
        "-o",
        "/w/s.jsonl",
        "-silent",
        "-nc",
        "-duc",
        "-max-time",
        "10",
    ]
    some = decode_config("dns", {"sources": ["crtsh", "alienvault"]})
    assert subfinder_argv(some, "example.com", "sf", "o")[-2:] == ["-s", "crtsh,alienvault"]
    every = decode_config("dns", {"all_sources": True, "max_enumeration_minutes": 60})
    assert subfinder_argv(every, "example.com", "sf", "o")[-3:] == ["-max-time", "60", "-all"]


def test_dnsx_argv() -> None:
    config = decode_config("dns", {"record_types": ["a", "cname"], "retries": 3})
    assert dnsx_argv(config, "/opt/dnsx", ("127.0.0.1:5353", "[::1]:53")) == [
        "/opt/dnsx",
        "-json",
        "-silent",
        "-nc",
        "-duc",
        "-resp",
        "-a",
        "-cname",
        "-rcode",
        "noerror,nxdomain,servfail,refused",
        "-retry",
        "3",
        "-t",
        "10",
        "-r",
        "127.0.0.1:5353,[::1]:53",
    ]
    assert "-r" not in dnsx_argv(DnsConfig(), "dnsx", ())


def test_resolver_addresses_spell_ports_out() -> None:
    assert resolver_addresses(("10.0.0.1", "10.0.0.2:5353", "[::1]")) == (
        "10.0.0.1:53",
        "10.0.0.2:5353",
        "[::1]:53",
    )
