"""The recon runner as a job runs it: a real process, stand-in subfinder and dnsx, and a DNS
server on 127.0.0.1 that records every query, so what is never resolved can be proved."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.version
import pytest

from contracts import VERSION
from contracts.dns import DnsRecon
from scanners import TOOLS, decode_config
from scanners.context import JobContext
from scanners.dns import transcript
from scanners.dns.names import OUTSIDE_SCOPE
from scanners.output import ToolOutput
from scanners.targets import TargetKind, parse_target
from tests.corpus import corpus_file
from tests.scanners.dns import standins
from tests.scanners.dns.standins import HOSTS, IN_SCOPE
from tests.scanners.dns.zone import ZoneServer

SCOPE = "localhost,127.0.0.0/8"
Asked = Callable[[], set[str]]


@dataclass
class Recon:
    code: int
    console: str
    output: ToolOutput
    entries: list[transcript.Entry]

    @property
    def data(self) -> DnsRecon:
        assert isinstance(self.output.data, DnsRecon)
        return self.output.data

    def titles(self) -> list[str]:
        return [f.title for f in self.output.findings]


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


@pytest.fixture
def subfinder(bin_dir: Path) -> Path:
    corpus = corpus_file("subfinder/scb__passive_scan_without_ip_example.com.jsonl")
    return standins.subfinder(bin_dir, corpus=corpus, hosts=HOSTS)


@pytest.fixture
def asked(zone: ZoneServer) -> Asked:
    """The names the DNS server has been asked about since the test began."""
    before = len(zone.zone.queries)
    return lambda: {name for name, _ in zone.zone.queries[before:]}


def argv_for(
    tmp_path: Path, config: dict[str, Any], programs: dict[str, Path], scope: str = SCOPE
) -> list[str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    # An absolute path that does not exist: "not installed", whatever this machine's PATH has.
    paths = {"dnsx": str(tmp_path / "not-installed" / "dnsx")} | {
        name: str(path) for name, path in programs.items()
    }
    job = JobContext(workdir=work, programs=paths, scope=scope)
    target = parse_target("localhost", allowed_kinds={TargetKind.HOST})
    return TOOLS["dns"].build_argv(decode_config("dns", config), target, job)


def run(
    tmp_path: Path, config: dict[str, Any], programs: dict[str, Path], scope: str = SCOPE
) -> Recon:
    argv = argv_for(tmp_path, config, programs, scope)
    proc = subprocess.run(
        argv, check=False, cwd=tmp_path / "work", capture_output=True, text=True, timeout=60
    )
    data = (tmp_path / "work" / "recon.jsonl").read_bytes()
    entries = [transcript.decoder.decode(line) for line in data.splitlines()]
    return Recon(proc.returncode, proc.stdout, TOOLS["dns"].parse(data), entries)


def test_dnspython_resolves_the_in_scope_names_only(
    tmp_path: Path, zone: ZoneServer, subfinder: Path, asked: Asked
) -> None:
    recon = run(tmp_path, {"resolvers": [zone.address]}, {"subfinder": subfinder})
    assert recon.code == 0, recon.console
    assert recon.entries[0] == transcript.Start(
        domain="localhost",
        scope=SCOPE,
        resolver="dnspython",
        resolvers=(zone.address,),
        versions=(f"jetscan-dns-recon {VERSION}", f"dnspython {dns.version.version}"),
    )
    # What the scan's result names as the scanner's version.
    assert TOOLS["dns"].version(recon.data) == (
        f"jetscan-dns-recon {VERSION}, dnspython {dns.version.version}"
    )
    assert transcript.Resolve(tuple(IN_SCOPE)) in recon.entries
    assert not recon.output.partial
    assert recon.titles() == [
        "Domain localhost",
        *(f"Out-of-scope name {n}.example.com" for n in EXAMPLE_COM),
        "Subdomain www.localhost",
        "Subdomain mail.localhost",
        "Subdomain dangling.localhost",
        "Dangling CNAME dangling.localhost -> gone.localhost",
        "Subdomain nx.localhost",
        "Subdomain external.localhost",
        "Out-of-scope name localhost.evil.example",
    ]
    by_title = {f.title: f for f in recon.output.findings}
    assert by_title["Subdomain www.localhost"].evidence == {
        "sources": ("crtsh", "alienvault"),
        "status": "NOERROR",
        "a": ("127.0.0.2",),
        "cname": ("web.localhost",),
    }
    assert by_title["Domain localhost"].evidence == {
        "status": "NOERROR",
        "a": ("127.0.0.1",),
        "aaaa": ("::1",),
        "mx": ("mail.localhost",),
        "ns": ("ns1.localhost",),
        "txt": ("v=spf1 -all",),
        "addresses_outside_scope": ("::1",),
    }
    assert by_title["Subdomain nx.localhost"].evidence["status"] == "NXDOMAIN"
    assert by_title["Subdomain external.localhost"].evidence["addresses_outside_scope"] == (
        "192.0.2.10",
    )
    # The safety rule: nothing out of scope was ever asked about.
    assert asked() == set(IN_SCOPE)
    assert "not resolving localhost.evil.example: not localhost" in recon.console
    assert "dangling.localhost NXDOMAIN cname=gone.localhost" in recon.console


EXAMPLE_COM = (
    "releases",
    "myap",
    "not-exist",
    "new-client",
    "op",
    "mall",
    "cdn1",
    "xn--rksmrgs-5wao1o",
)


def test_dnsx_gets_the_in_scope_names_on_stdin_and_the_same_findings_come_out(
    tmp_path: Path, bin_dir: Path, zone: ZoneServer, subfinder: Path, asked: Asked
) -> None:
    dnsx = standins.dnsx(bin_dir)
    programs = {"subfinder": subfinder, "dnsx": dnsx}
    recon = run(tmp_path, {"resolvers": [zone.address]}, programs)
    assert recon.code == 0, recon.console
    assert recon.data.resolver == "dnsx"
    (call,) = standins.calls(dnsx)
    assert call["stdin"] == IN_SCOPE
    assert call["argv"][call["argv"].index("-r") + 1] == zone.address
    assert asked() == set(IN_SCOPE)
    by_dnspython = run(tmp_path, {"resolvers": [zone.address], "resolver": "dnspython"}, programs)
    assert by_dnspython.data.resolver == "dnspython"
    assert [f.fingerprint for f in recon.output.findings] == [
        f.fingerprint for f in by_dnspython.output.findings
    ]
    # dnsx prints nothing for a name without records; dnspython reports its NXDOMAIN.
    (nx,) = [s for s in recon.data.subdomains if s.name == "nx.localhost"]
    assert not nx.resolved


def test_a_narrower_deployment_scope_keeps_even_the_domain_unresolved(
    tmp_path: Path, zone: ZoneServer, subfinder: Path, asked: Asked
) -> None:
    recon = run(tmp_path, {"resolvers": [zone.address]}, {"subfinder": subfinder}, "www.localhost")
    assert recon.code == 0, recon.console
    assert asked() == {"www.localhost"}
    out_of_scope = {s.name: s.out_of_scope for s in recon.data.subdomains if s.out_of_scope}
    assert out_of_scope["localhost"] == OUTSIDE_SCOPE
    assert out_of_scope["mail.localhost"] == OUTSIDE_SCOPE
    assert [s.name for s in recon.data.subdomains if not s.out_of_scope] == ["www.localhost"]


def test_subfinder_failing_is_a_failed_step_with_its_names_kept(
    tmp_path: Path, bin_dir: Path, zone: ZoneServer
) -> None:
    failing = standins.subfinder(bin_dir, hosts=HOSTS[:1], exit_code=1)
    recon = run(tmp_path, {"resolvers": [zone.address]}, {"subfinder": failing})
    assert recon.code == 1
    assert recon.output.partial
    assert recon.data.errors == ("subfinder: exited with code 1",)
    assert [s.name for s in recon.data.subdomains if s.resolved] == ["localhost", "www.localhost"]


def test_subfinder_missing_still_resolves_the_domain(tmp_path: Path, zone: ZoneServer) -> None:
    missing = tmp_path / "nowhere" / "subfinder"
    recon = run(tmp_path, {"resolvers": [zone.address]}, {"subfinder": missing})
    assert recon.code == 1
    assert recon.data.errors == (
        f"subfinder: could not start {missing}: No such file or directory",
    )
    assert recon.titles() == ["Domain localhost"]
    assert recon.data.subdomains[0].a == ("127.0.0.1",)


def test_dnsx_asked_for_and_missing_resolves_nothing(
    tmp_path: Path, zone: ZoneServer, subfinder: Path, asked: Asked
) -> None:
    recon = run(
        tmp_path, {"resolvers": [zone.address], "resolver": "dnsx"}, {"subfinder": subfinder}
    )
    assert recon.code == 1
    assert recon.data.resolver == ""
    assert len(recon.data.errors) == 1
    assert recon.data.errors[0].startswith("dnsx: ")
    assert recon.data.errors[0].endswith("not found (resolver: dnsx); nothing was resolved")
    assert not any(s.resolved for s in recon.data.subdomains)
    assert asked() == set()


def test_lines_subfinder_garbles_are_reported_not_fatal(
    tmp_path: Path, bin_dir: Path, zone: ZoneServer
) -> None:
    garbling = standins.subfinder(bin_dir, hosts=HOSTS[:1], extra=("[ERR] rate limited",))
    recon = run(tmp_path, {"resolvers": [zone.address]}, {"subfinder": garbling})
    assert recon.code == 0
    assert recon.output.partial
    (error,) = recon.data.errors
    assert error.startswith("subfinder wrote a line that does not decode")
    assert "Subdomain www.localhost" in recon.titles()


@pytest.mark.parametrize(
    "replaced",
    [
        '--config={"resolvers": "127.0.0.1"}',
        '--config={"bogus": 1}',
        "--config=not json",
        "--domain=-d",
        "--domain=http://localhost/",
        "--scope=*.localhost",
    ],
)
def test_unusable_arguments_exit_2_writing_nothing(
    tmp_path: Path, subfinder: Path, replaced: str
) -> None:
    option = replaced.partition("=")[0]
    argv = [
        replaced if arg.startswith(f"{option}=") else arg
        for arg in argv_for(tmp_path, {}, {"subfinder": subfinder})
    ]
    proc = subprocess.run(
        argv, check=False, cwd=tmp_path / "work", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "unusable arguments" in proc.stdout
    assert not (tmp_path / "work" / "recon.jsonl").exists()
    assert standins.calls(subfinder) == []


def test_a_run_stopped_mid_way_leaves_a_partial_result(
    tmp_path: Path, bin_dir: Path, zone: ZoneServer
) -> None:
    slow = standins.subfinder(bin_dir, hosts=HOSTS, sleep=60)
    argv = argv_for(tmp_path, {"resolvers": [zone.address]}, {"subfinder": slow})
    output = tmp_path / "work" / "recon.jsonl"
    # As the job stops a scan at its deadline: SIGTERM to the runner's process group.
    proc = subprocess.Popen(argv, cwd=tmp_path / "work", start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not standins.calls(slow):
            assert time.monotonic() < deadline, "subfinder never started"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    parsed = TOOLS["dns"].parse(output.read_bytes())
    assert parsed.partial
    assert [f.title for f in parsed.findings] == ["Domain localhost"]


def test_an_empty_scope_fails_closed(
    tmp_path: Path, zone: ZoneServer, subfinder: Path, asked: Asked
) -> None:
    recon = run(tmp_path, {"resolvers": [zone.address]}, {"subfinder": subfinder}, scope="")
    assert recon.code == 0
    assert "the deployment scope names no domain" in recon.console
    assert all(s.out_of_scope for s in recon.data.subdomains)
    assert asked() == set()
