from __future__ import annotations

import math

import pytest

from contracts.findings import Severity, fingerprint
from contracts.nmap import (
    Address,
    Host,
    Hostname,
    Port,
    Script,
    ScriptElem,
    ScriptTable,
    Service,
)
from scanners.nmap.findings import host_findings, severity_for_cvss
from scanners.nmap.parse import parse
from tests.corpus import corpus_file


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (0.0, Severity.INFO),
        (-1.0, Severity.INFO),
        (math.nan, Severity.INFO),
        (0.1, Severity.LOW),
        (3.9, Severity.LOW),
        (4.0, Severity.MEDIUM),
        (6.9, Severity.MEDIUM),
        (7.0, Severity.HIGH),
        (8.9, Severity.HIGH),
        (9.0, Severity.CRITICAL),
        (10.0, Severity.CRITICAL),
    ],
)
def test_severity_for_cvss(score: float, severity: Severity) -> None:
    assert severity_for_cvss(score) is severity


def _entry(vuln_id: str, cvss: str, kind: str, exploit: bool) -> ScriptTable:
    return ScriptTable(
        elems=(
            ScriptElem(key="cvss", value=cvss),
            ScriptElem(key="id", value=vuln_id),
            ScriptElem(key="is_exploit", value="true" if exploit else "false"),
            ScriptElem(key="type", value=kind),
        )
    )


SSH = Service(name="ssh", product="OpenSSH", version="7.4", method="probed")
VULNERS = Script(
    id="vulners",
    output="(structured)",
    tables=(
        ScriptTable(
            key="cpe:/a:openbsd:openssh:7.4",
            tables=(
                _entry("CVE-2023-38408", "9.8", "cve", exploit=False),
                _entry("EDB-ID:45233", "5.0", "exploitdb", exploit=True),
                _entry("CVE-2018-15919", "5.0", "cve", exploit=False),
            ),
        ),
        ScriptTable(
            key="cpe:/a:openbsd:openssh",
            tables=(_entry("CVE-2018-15919", "5.0", "cve", exploit=False),),
        ),
    ),
)


def _host(*ports: Port, addresses: tuple[Address, ...] = (), names: tuple[str, ...] = ()) -> Host:
    return Host(
        status="up",
        addresses=addresses or (Address(addr="192.0.2.7", addrtype="ipv4"),),
        hostnames=tuple(Hostname(name=name, type="user") for name in names),
        ports=ports,
    )


def test_vulners_entries_become_findings_with_cvss_severity() -> None:
    ssh = Port(protocol="tcp", portid=22, state="open", service=SSH, scripts=(VULNERS,))
    port_finding, *vulns = host_findings(_host(ssh))
    assert port_finding.title == "Open port 22/tcp (ssh)"
    # The port keeps vulners' text; the entries are findings of their own.
    assert port_finding.evidence["scripts"] == (Script(id="vulners", output="(structured)"),)
    assert port_finding.evidence["service"] is SSH
    assert [(v.title, v.severity) for v in vulns] == [
        ("CVE-2023-38408", Severity.CRITICAL),
        ("EDB-ID:45233 (exploitdb exploit)", Severity.MEDIUM),
        ("CVE-2018-15919", Severity.MEDIUM),
    ]
    critical, exploit, listed_twice = vulns
    assert critical.fingerprint == fingerprint("nmap", "192.0.2.7", "tcp", 22, "CVE-2023-38408")
    assert critical.references == (
        "https://vulners.com/cve/CVE-2023-38408",
        "https://nvd.nist.gov/vuln/detail/CVE-2023-38408",
    )
    assert exploit.references == ("https://vulners.com/exploitdb/EDB-ID:45233",)
    assert exploit.evidence["is_exploit"] is True
    assert "public exploit" in exploit.description
    assert listed_twice.evidence["cpe"] == ("cpe:/a:openbsd:openssh:7.4", "cpe:/a:openbsd:openssh")
    assert {(v.host, v.port, v.protocol) for v in vulns} == {("192.0.2.7", 22, "tcp")}


def test_vulners_text_output_is_read_when_there_is_no_structure() -> None:
    text = (
        "\n  cpe:/a:memcached:memcached:1.4.25: \n"
        "    \tCVE-2016-8705\t7.5\thttps://vulners.com/cve/CVE-2016-8705\n"
        "    \tPACKETSTORM:139572\t0.0\thttps://vulners.com/packetstorm/PACKETSTORM:139572"
        "\t*EXPLOIT*\n"
        "    not a vulners line\n"
    )
    script = Script(id="vulners", output=text)
    memcached = Port(protocol="tcp", portid=11211, state="open", scripts=(script,))
    _, high, exploit = host_findings(_host(memcached))
    assert (high.title, high.severity) == ("CVE-2016-8705", Severity.HIGH)
    assert high.evidence["cpe"] == ("cpe:/a:memcached:memcached:1.4.25",)
    assert (exploit.title, exploit.severity) == (
        "PACKETSTORM:139572 (packetstorm exploit)",
        Severity.INFO,
    )


def test_vulners_on_a_port_that_is_not_open_is_ignored() -> None:
    filtered = Port(protocol="tcp", portid=22, state="filtered", scripts=(VULNERS,))
    assert host_findings(_host(filtered)) == []


@pytest.mark.parametrize(
    ("addresses", "names", "expected"),
    [
        (
            (
                Address(addr="00:11:22:33:44:55", addrtype="mac"),
                Address(addr="2001:db8::1", addrtype="ipv6"),
                Address(addr="192.0.2.1", addrtype="ipv4"),
            ),
            ("a.example",),
            "192.0.2.1",
        ),
        (
            (
                Address(addr="00:11:22:33:44:55", addrtype="mac"),
                Address(addr="2001:db8::1", addrtype="ipv6"),
            ),
            (),
            "2001:db8::1",
        ),
        ((Address(addr="00:11:22:33:44:55", addrtype="mac"),), ("a.example",), "a.example"),
        ((Address(addr="00:11:22:33:44:55", addrtype="mac"),), (), "00:11:22:33:44:55"),
    ],
)
def test_the_finding_host_prefers_an_ip_address(
    addresses: tuple[Address, ...], names: tuple[str, ...], expected: str
) -> None:
    [finding] = host_findings(
        _host(Port(protocol="tcp", portid=80, state="open"), addresses=addresses, names=names)
    )
    assert finding.host == expected


def test_a_host_without_any_identity_yields_no_findings() -> None:
    anonymous = Host(status="up", ports=(Port(protocol="tcp", portid=80, state="open"),))
    assert host_findings(anonymous) == []


@pytest.mark.parametrize(
    ("service", "description"),
    [
        (None, ""),
        (Service(name="http", method="table"), "http (guessed from the port number)"),
        (
            Service(name="http", method="probed", conf=10),
            "http: identified by nmap's probes, no product or version named",
        ),
        (Service(name="pptp", version="(Firmware: 1)", method="probed"), "pptp: (Firmware: 1)"),
        (
            Service(name="https", product="nginx", extrainfo="Ubuntu", tunnel="ssl"),
            "https: nginx (Ubuntu) over ssl",
        ),
        (Service(product="Foo"), "Foo"),
        (Service(), ""),
    ],
)
def test_description_names_the_service(service: Service | None, description: str) -> None:
    [finding] = host_findings(_host(Port(protocol="udp", portid=53, state="open", service=service)))
    assert finding.description == description
    assert finding.protocol == "udp"


# Real nmap output: how each port's service was found (`<service method=...>`) decides what
# its description claims. Only a port-table name is "guessed from the port number".
@pytest.mark.parametrize(
    ("name", "host", "port", "description"),
    [
        # <service name="ssh" method="table" conf="3"/>: nmap -sC without -sV.
        ("dradis__nse-01.xml", "45.33.32.156", 22, "ssh (guessed from the port number)"),
        # <service name="unknown" method="table" conf="3"/>: no name in nmap's port table.
        (
            "dradis__nse-01.xml",
            "45.33.32.156",
            7496,
            "not identified: nmap's port table has no service for this port",
        ),
        # <service name="http" method="probed" conf="10"/>: a probe matched, naming no product.
        (
            "phage__nmap-2016-03-29.xml",
            "10.0.1.129",
            80,
            "http: identified by nmap's probes, no product or version named",
        ),
        (
            "libnmap__dionaea_scan.xml",
            "172.28.1.3",
            1883,
            "mqtt: identified by nmap's probes, no product or version named",
        ),
        # <service name="tcpwrapped" method="probed" conf="8"/>
        (
            "libnmap__1_os_banner_scripts.xml",
            "127.0.0.1",
            8080,
            "tcpwrapped: nmap's probes connected and were closed without an answer",
        ),
        # <service name="http" product="nginx" method="probed" conf="10">
        ("libnmap__dionaea_scan.xml", "172.28.1.3", 80, "http: nginx"),
    ],
)
def test_description_says_how_nmap_found_the_service(
    name: str, host: str, port: int, description: str
) -> None:
    output = parse(corpus_file(f"nmap/{name}").read_bytes())
    [finding] = [
        f
        for f in output.findings
        if f.host == host and f.port == port and f.title.startswith("Open port")
    ]
    assert finding.description == description
