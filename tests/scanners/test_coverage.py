"""Coverage and "reached nothing", per tool, over real outputs (../shared/corpus) and a few
written here for the cases the corpus lacks."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from contracts.coverage import Coverage, PortRange, covers
from contracts.findings import Finding, Severity
from scanners import PARSERS, TOOLS, decode_config
from scanners.targets import TargetKind, parse_target
from tests.corpus import cases, corpus_file, require

DOWN = b"""<?xml version="1.0"?>
<nmaprun scanner="nmap" args="nmap -sT 127.0.0.2/31" start="1" version="7.93">
<scaninfo type="connect" protocol="tcp" numservices="2" services="22,80"/>
<host><status state="down" reason="no-response"/><address addr="127.0.0.2" addrtype="ipv4"/>
</host>
<runstats><finished time="2" exit="success"/><hosts up="0" down="2" total="2"/></runstats>
</nmaprun>
"""


def run(tool: str, data: bytes) -> object:
    return TOOLS[tool].parse(data).data


def finding(host: str, port: int, **evidence: object) -> Finding:
    return Finding(
        tool="nmap",
        severity=Severity.INFO,
        title="t",
        fingerprint=f"{host}:{port}",
        host=host,
        port=port,
        protocol="tcp",
        evidence=dict(evidence),
    )


def test_nmap_with_every_host_down_reached_nothing() -> None:
    data = run("nmap", DOWN)
    assert TOOLS["nmap"].unreached(data) == "nmap reached nothing: every host scanned was down"
    target = parse_target("127.0.0.2/31", allowed_kinds={TargetKind.CIDR})
    assert TOOLS["nmap"].coverage(decode_config("nmap", {}), target, data).hosts == ()


def test_nmap_covers_the_scanned_ports_of_the_hosts_that_were_up() -> None:
    data = run("nmap", corpus_file("nmap/scb__localhost.xml").read_bytes())
    assert TOOLS["nmap"].unreached(data) == ""
    target = parse_target("127.0.0.1", allowed_kinds={TargetKind.IP})
    cov = TOOLS["nmap"].coverage(decode_config("nmap", {}), target, data)
    assert cov.hosts == ("127.0.0.1",)
    assert PortRange("tcp", 1021, 1100) in cov.ports
    assert covers(cov, finding("127.0.0.1", 22))
    assert covers(cov, finding("127.0.0.1", 1050))
    assert not covers(cov, finding("127.0.0.1", 2))  # not in nmap's default list
    assert not covers(cov, finding("127.0.0.2", 22))
    # A scan without vulners fixes no vulners finding.
    assert not covers(cov, finding("127.0.0.1", 22, cvss=5.0, id="CVE-1"))
    with_vulners = decode_config("nmap", {"scripts": ["vulners"], "service_detection": True})
    cov = TOOLS["nmap"].coverage(with_vulners, target, data)
    assert covers(cov, finding("127.0.0.1", 22, cvss=5.0, id="CVE-1"))


@pytest.mark.parametrize("name", ["scb__unavailable-host.json", "scb-v500__unavailable-host.json"])
def test_sslyze_against_an_unreachable_server_reached_nothing(name: str) -> None:
    data = run("sslyze", corpus_file(f"sslyze/{name}").read_bytes())
    assert TOOLS["sslyze"].unreached(data).startswith("sslyze reached nothing")


def test_sslyze_covers_its_endpoint_only_with_every_check() -> None:
    data = run("sslyze", corpus_file("sslyze/scb__expired.badssl.com.json").read_bytes())
    assert TOOLS["sslyze"].unreached(data) == ""
    target = parse_target("127.0.0.1:443", allowed_kinds={TargetKind.ENDPOINT})
    assert TOOLS["sslyze"].coverage(decode_config("sslyze", {}), target, data).everything
    subset = decode_config("sslyze", {"scan_commands": ["certificate_info"]})
    assert TOOLS["sslyze"].coverage(subset, target, data) == Coverage()


def test_zap_covers_the_urls_under_its_target() -> None:
    cov = Coverage(url_prefix="https://example.com/app/")
    zap = Finding(tool="zap", severity=Severity.LOW, title="t", fingerprint="f", url="")
    assert covers(cov, zap)
    assert covers(cov, msgspec.structs.replace(zap, url="https://example.com/app/x?q=1"))
    assert not covers(cov, msgspec.structs.replace(zap, url="https://example.com/admin/"))


@pytest.mark.parametrize("path", cases("zap"))
def test_every_zap_report_in_the_corpus_reached_its_site(path: Path | None) -> None:
    data = require(path, "zap reports").read_bytes()
    assert TOOLS["zap"].unreached(run("zap", data)) == ""


def test_an_empty_coverage_covers_nothing() -> None:
    assert not covers(Coverage(), finding("127.0.0.1", 22))


def test_dns_recon_without_any_resolver_answer_reached_nothing() -> None:
    from contracts.dns import DnsRecon, Subdomain

    silent = DnsRecon(domain="example.test", subdomains=(Subdomain(name="example.test"),))
    assert TOOLS["dns"].unreached(silent).startswith("DNS recon reached nothing")
    answered = DnsRecon(
        domain="example.test", subdomains=(Subdomain(name="example.test", status="NXDOMAIN"),)
    )
    assert TOOLS["dns"].unreached(answered) == ""


@pytest.mark.parametrize("path", cases("dnsx"))
def test_dns_output_in_the_corpus_reached_a_resolver(path: Path | None) -> None:
    with require(path, "dnsx output").open("rb") as fp:
        recon = PARSERS["dnsx"](fp).data
    assert TOOLS["dns"].unreached(recon) == ""
