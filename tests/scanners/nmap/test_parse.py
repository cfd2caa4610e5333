from __future__ import annotations

import io

import msgspec
import pytest

from contracts.findings import Severity
from contracts.nmap import Host, NmapRun
from scanners.errors import ParseError
from scanners.nmap.parse import iter_run, parse, parse_stream
from scanners.output import ToolOutput

HEAD = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -sT 10.0.0.0/30" start="1700000000" version="7.93"
 xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="1000" services="1-1000"/>
<verbose level="1"/>
"""
TAIL = b"""<runstats><finished time="1700000100" timestr="x" elapsed="100.50" exit="success"/>
<hosts up="2" down="1" total="3"/></runstats>
</nmaprun>
"""


def host(address: str, ports: bytes = b"", status: str = "up") -> bytes:
    return (
        (
            f'<host starttime="1700000001" endtime="1700000002"><status state="{status}"'
            f' reason="syn-ack"/><address addr="{address}" addrtype="ipv4"/>'
            f'<hostnames><hostname name="h-{address}" type="PTR"/></hostnames>'
        ).encode()
        + (b"<ports>" + ports + b"</ports>" if ports else b"")
        + b"</host>\n"
    )


def port(portid: int, state: str = "open", inner: bytes = b"") -> bytes:
    return (
        (
            f'<port protocol="tcp" portid="{portid}"><state state="{state}" reason="syn-ack"/>'
        ).encode()
        + inner
        + b"</port>"
    )


HTTP = b'<service name="http" product="nginx" version="1.25" method="probed" conf="10"/>'
TWO_HOSTS = (
    HEAD
    + host("10.0.0.1", port(22) + port(80, inner=HTTP) + port(81, "closed"))
    + host("10.0.0.2", port(443))
    + host("10.0.0.3", status="down")
    + TAIL
)


def test_open_ports_become_info_findings_and_the_rest_is_data() -> None:
    output = parse(TWO_HOSTS)
    assert not output.partial
    assert [(f.host, f.port, f.protocol, f.title) for f in output.findings] == [
        ("10.0.0.1", 22, "tcp", "Open port 22/tcp"),
        ("10.0.0.1", 80, "tcp", "Open port 80/tcp (http)"),
        ("10.0.0.2", 443, "tcp", "Open port 443/tcp"),
    ]
    assert {f.severity for f in output.findings} == {Severity.INFO}
    http = output.findings[1]
    assert http.description == "http: nginx 1.25"
    assert http.evidence["hostnames"] == ("h-10.0.0.1",)
    assert http.evidence["service"].product == "nginx"
    run = output.data
    assert (run.version, run.start, run.end, run.elapsed_seconds, run.exit) == (
        "7.93",
        1700000000,
        1700000100,
        100.5,
        "success",
    )
    assert (run.hosts_up, run.hosts_down, run.hosts_total) == (2, 1, 3)
    assert [h.status for h in run.hosts] == ["up", "up", "down"]
    assert [p.state for p in run.hosts[0].ports] == ["open", "open", "closed"]
    assert run.scan_info[0].type == "connect"


def test_parse_and_parse_stream_agree() -> None:
    assert parse(TWO_HOSTS) == parse_stream(io.BytesIO(TWO_HOSTS))


def test_fingerprints_are_stable_and_unique() -> None:
    first, again = parse(TWO_HOSTS), parse(TWO_HOSTS.replace(b"1700000", b"1800000"))
    assert [f.fingerprint for f in first.findings] == [f.fingerprint for f in again.findings]
    assert len({f.fingerprint for f in first.findings}) == len(first.findings)


def test_a_host_listed_twice_yields_each_finding_once() -> None:
    output = parse(HEAD + host("10.0.0.1", port(22)) + host("10.0.0.1", port(22)) + TAIL)
    assert len(output.data.hosts) == 2
    assert len(output.findings) == 1


@pytest.mark.parametrize(
    "document",
    [
        HEAD + TAIL,
        HEAD + host("10.0.0.9", status="down") + TAIL,
        HEAD + host("10.0.0.9", port(53, "open|filtered") + port(25, "filtered")) + TAIL,
    ],
)
def test_nothing_open_is_a_successful_empty_result(document: bytes) -> None:
    output = parse(document)
    assert (output.findings, output.partial) == ((), False)


def test_the_output_survives_the_bus() -> None:
    output = parse(TWO_HOSTS)
    wire = msgspec.json.encode(output)
    assert msgspec.json.encode(msgspec.json.decode(wire, type=ToolOutput)) == wire


DEEP_SCRIPT = b'<script id="x">' + b"<table>" * 80 + b"</table>" * 80 + b"</script>"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"", "empty output"),
        (b"   \n", "empty output"),
        (b"hello", "not well-formed XML"),
        (b'{"nmaprun": {}}', "not well-formed XML"),
        (b"\x00\x01\x02", "not well-formed XML"),
        (b"<html><body>502 Bad Gateway</body></html>", "root element is <html>"),
        (b'<?xml version="1.0"?><report><site/></report>', "root element is <report>"),
        (b"<nmaprun><host></port></nmaprun>", "mismatched tag"),
        (HEAD + TAIL + b"<nmaprun/>", "junk after document element"),
        (HEAD + b"<host>&undefined;</host>" + TAIL, "undefined entity"),
        (
            b'<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><nmaprun>&b;</nmaprun>',
            "forbidden XML construct",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<nmaprun>&x;</nmaprun>",
            "forbidden XML construct",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY % p SYSTEM "http://127.0.0.1/">'
            b"%p;]><nmaprun/>",
            "forbidden XML construct",
        ),
        (HEAD + host("10.0.0.1", port(22).replace(b'"22"', b'"ssh"')) + TAIL, "portid='ssh'"),
        (HEAD + host("10.0.0.1", port(22, inner=DEEP_SCRIPT)) + TAIL, "nested deeper"),
    ],
)
def test_input_that_is_not_nmap_xml_is_a_parse_error(document: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(document)
    assert raised.value.tool == "nmap"
    assert reason in raised.value.reason


def test_cut_inside_a_host_keeps_the_complete_hosts() -> None:
    cut = TWO_HOSTS[: TWO_HOSTS.index(b"10.0.0.2") + 20]
    output = parse(cut)
    assert output.partial
    assert output.data.partial
    assert [h.addresses[0].addr for h in output.data.hosts] == ["10.0.0.1"]
    assert [f.port for f in output.findings] == [22, 80]


def test_every_cut_is_a_partial_result_or_a_parse_error_before_the_root() -> None:
    full = parse(TWO_HOSTS)
    full_fingerprints = {f.fingerprint for f in full.findings}
    root_opened = TWO_HOSTS.index(b'xmloutputversion="1.05">') + len(b'xmloutputversion="1.05">')
    for length in range(len(TWO_HOSTS) - len(b"</nmaprun>\n")):
        cut = TWO_HOSTS[:length]
        if length < root_opened:
            with pytest.raises(ParseError):
                parse(cut)
            continue
        output = parse(cut)
        assert output.partial, length
        assert len(output.data.hosts) <= len(full.data.hosts)
        assert {f.fingerprint for f in output.findings} <= full_fingerprints


@pytest.mark.parametrize(
    "document",
    [
        HEAD + host("10.0.0.1", port(22)) + b"</nmaprun>",
        HEAD
        + host("10.0.0.1", port(22))
        + b'<runstats><finished time="1" exit="error" errormsg="Interrupted"/></runstats>'
        + b"</nmaprun>",
    ],
)
def test_a_run_nmap_did_not_finish_is_partial(document: bytes) -> None:
    output = parse(document)
    assert output.partial
    assert len(output.findings) == 1


def test_an_error_exit_keeps_its_message() -> None:
    document = HEAD + b'<runstats><finished exit="error" errormsg="Killed"/></runstats></nmaprun>'
    assert parse(document).data.error_message == "Killed"


def test_comments_before_the_xml_declaration_are_skipped() -> None:
    licensed = b"<!--\nSPDX-License-Identifier: Apache-2.0\n-->\n\n" + TWO_HOSTS
    assert parse(licensed) == parse(TWO_HOSTS)


def test_scripts_keep_output_and_structure() -> None:
    script = (
        b'<script id="ssl-cert" output="Subject: commonName=a"><table key="subject">'
        b'<elem key="commonName">a</elem></table><elem key="sig_algo">sha256</elem></script>'
    )
    pre = b'<prescript><script id="broadcast-ping" output="none"/></prescript>'
    document = HEAD + pre + host("10.0.0.1", port(443, inner=script)) + TAIL
    output = parse(document)
    [evidence] = msgspec.to_builtins(output.findings[0].evidence["scripts"])
    assert evidence == {
        "id": "ssl-cert",
        "output": "Subject: commonName=a",
        "elems": ({"key": "sig_algo", "value": "sha256"},),
        "tables": ({"key": "subject", "elems": ({"key": "commonName", "value": "a"},)},),
    }
    assert output.data.prescripts[0].id == "broadcast-ping"
    assert output.data.hosts[0].ports[0].scripts[0].tables[0].key == "subject"


def test_iter_run_yields_each_host_then_the_run_once() -> None:
    items = list(iter_run(io.BytesIO(TWO_HOSTS)))
    *hosts, run = items
    assert all(isinstance(item, Host) for item in hosts)
    assert isinstance(run, NmapRun)
    whole = parse(TWO_HOSTS).data
    assert tuple(hosts) == whole.hosts
    assert run == msgspec.structs.replace(whole, hosts=())


def test_iter_run_on_a_cut_ends_with_a_partial_run() -> None:
    cut = TWO_HOSTS[: TWO_HOSTS.index(b"10.0.0.2") + 20]
    *hosts, run = iter_run(io.BytesIO(cut))
    assert isinstance(run, NmapRun)
    assert run.partial
    assert [h.addresses[0].addr for h in hosts if isinstance(h, Host)] == ["10.0.0.1"]


def test_iter_run_refuses_a_wrong_root_before_yielding() -> None:
    with pytest.raises(ParseError, match="root element is <report>"):
        next(iter_run(io.BytesIO(b'<?xml version="1.0"?><report/>')))


def test_control_characters_in_attribute_values_are_replaced_not_fatal() -> None:
    # Older nmap copied service banners' control bytes into attributes raw; XML forbids them.
    banner = b'<service name="ftp" product="vsFTPd\x01\x1b[0m" extrainfo="a\x00b\tc" conf="10"/>'
    output = parse(HEAD + host("10.0.0.1", port(21, inner=banner)) + TAIL)
    assert isinstance(output.data, NmapRun)
    [found] = output.data.hosts
    service = found.ports[0].service
    assert service is not None
    assert (service.product, service.extrainfo) == ("vsFTPd\ufffd\ufffd[0m", "a\ufffdb c")
    assert not output.partial


def test_markdown_saved_as_xml_is_refused_naming_what_it_is() -> None:
    with pytest.raises(ParseError) as raised:
        parse(b"# nmap scan of 10.0.0.0/30\n\nAll hosts down.\n")
    assert raised.value.reason.startswith("not well-formed XML")
    assert raised.value.reason.endswith("found Markdown text starting '# nmap scan of 10.0.0.0/30'")
