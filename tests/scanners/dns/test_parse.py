"""The recon file, bare subfinder and bare dnsx lines: findings, data, and every bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.findings import Severity, fingerprint
from scanners.dns import transcript
from scanners.dns.parse import parse, parse_dnsx, parse_subfinder
from scanners.errors import ParseError

SCOPE = "example.com, 10.0.0.0/8"


def sub(host: str, source: str = "crtsh", **extra: Any) -> str:
    return json.dumps({"host": host, "input": "example.com", "source": source, **extra})


def dnsx(host: str, status: str = "NOERROR", **records: list[str]) -> str:
    line = {"host": host, "resolver": ["10.0.0.53:53"], **records, "status_code": status}
    return json.dumps(line | {"timestamp": "2026-01-02T03:04:05.123456789Z", "raw": "..."})


def recon(*entries: transcript.Entry, end: bool = True, scope: str = SCOPE) -> bytes:
    start = transcript.Start(
        domain="example.com", scope=scope, resolver="dnsx", resolvers=("10.0.0.53:53",)
    )
    body = [start, *entries, *([transcript.End()] if end else [])]
    return b"".join(transcript.encode(entry) for entry in body)


RUN = (
    transcript.SubfinderLine(sub("www.example.com")),
    transcript.SubfinderLine(sub("www.example.com", "alienvault")),
    transcript.SubfinderLine(sub("old.example.com")),
    transcript.SubfinderLine(sub("shop.example.com")),
    transcript.SubfinderLine(sub("example.com.evil.net")),
    transcript.SubfinderLine(sub("*.example.com")),
    transcript.Resolve(("example.com", "www.example.com", "old.example.com", "shop.example.com")),
    transcript.DnsxLine(dnsx("example.com", a=["10.0.0.1"], mx=["mx.example.com"], txt=["v=spf1"])),
    transcript.DnsxLine(
        dnsx("www.example.com", a=["10.0.0.2", "192.0.2.7"], cname=["web.example.com"])
    ),
    transcript.DnsxLine(dnsx("shop.example.com", "NXDOMAIN", cname=["shop.saas.example.net"])),
)


def titles(data: bytes) -> list[tuple[str, str, str]]:
    return [(f.severity.value, f.title, f.host) for f in parse(data).findings]


def test_a_run_gives_a_finding_per_name_and_flags_the_rest() -> None:
    output = parse(recon(*RUN))
    assert not output.partial
    assert [(f.severity.value, f.title, f.host) for f in output.findings] == [
        ("info", "Domain example.com", "example.com"),
        ("info", "Subdomain www.example.com", "www.example.com"),
        ("info", "Subdomain old.example.com", "old.example.com"),
        ("info", "Subdomain shop.example.com", "shop.example.com"),
        ("medium", "Dangling CNAME shop.example.com -> shop.saas.example.net", "shop.example.com"),
        ("info", "Out-of-scope name example.com.evil.net", ""),
        ("info", "Out-of-scope name *.example.com", ""),
    ]
    www = output.findings[1]
    assert www.evidence == {
        "sources": ("crtsh", "alienvault"),
        "status": "NOERROR",
        "a": ("10.0.0.2", "192.0.2.7"),
        "cname": ("web.example.com",),
        "addresses_outside_scope": ("192.0.2.7",),
    }
    assert www.fingerprint == fingerprint("dns", "name", "www.example.com")
    assert "Resolves via web.example.com to 10.0.0.2, 192.0.2.7." in www.description
    assert output.findings[2].description == "Found by crtsh. No answer from dnsx with records."
    evil = output.findings[5]
    assert evil.evidence == {
        "name": "example.com.evil.net",
        "out_of_scope": "not example.com or one of its subdomains",
        "sources": ("crtsh",),
    }
    assert output.findings[6].evidence["out_of_scope"].startswith("not a valid hostname")
    data = output.data
    assert data.domain == "example.com"
    assert data.resolver == "dnsx"
    assert data.resolvers == ("10.0.0.53:53",)
    assert [s.name for s in data.subdomains if s.resolved] == [
        "example.com",
        "www.example.com",
        "shop.example.com",
    ]
    assert data.subdomains[0].mx == ("mx.example.com",)
    assert data.errors == ()


def test_fingerprints_depend_on_names_only() -> None:
    first = {f.fingerprint for f in parse(recon(*RUN)).findings}
    changed = (
        *reversed(RUN[:6]),
        transcript.Resolve(("example.com", "shop.example.com", "www.example.com")),
        transcript.DnsxLine(dnsx("www.example.com", a=["10.9.9.9"])),
        transcript.DnsxLine(dnsx("shop.example.com", "NXDOMAIN", cname=["shop.saas.example.net"])),
    )
    assert {f.fingerprint for f in parse(recon(*changed)).findings} == first


@pytest.mark.parametrize(
    ("status", "cname", "dangling"),
    [
        ("NXDOMAIN", ["gone.example.net"], True),
        ("NOERROR", ["alive.example.net"], False),
        ("NXDOMAIN", [], False),
        ("SERVFAIL", ["unknown.example.net"], False),
    ],
)
def test_only_a_cname_chain_ending_in_nxdomain_is_dangling(
    status: str, cname: list[str], dangling: bool
) -> None:
    data = recon(
        transcript.Resolve(("a.example.com",)),
        transcript.DnsxLine(dnsx("a.example.com", status, cname=cname)),
    )
    found = [f for f in parse(data).findings if f.severity is Severity.MEDIUM]
    assert bool(found) is dangling


def test_a_run_without_its_end_line_is_partial_not_an_error() -> None:
    # Stopped after the first answer: every name is on record, one of them resolved.
    output = parse(recon(*RUN[:8], end=False))
    assert output.partial
    assert output.data.partial
    assert len(output.findings) == 6
    assert [s.name for s in output.data.subdomains if s.resolved] == ["example.com"]


def test_failed_steps_are_recorded_and_make_the_result_partial() -> None:
    data = recon(*RUN, transcript.Failure("subfinder", "exited with code 1"))
    output = parse(data)
    assert output.partial
    assert output.data.errors == ("subfinder: exited with code 1",)


def test_a_tool_line_that_does_not_decode_is_an_error_in_the_data() -> None:
    data = recon(
        transcript.SubfinderLine("[WRN] not json"),
        transcript.SubfinderLine(json.dumps({"source": "crtsh"})),
        transcript.SubfinderLine(sub("ok.example.com")),
    )
    output = parse(data)
    assert output.partial
    assert len(output.data.errors) == 2
    assert output.data.errors[0].startswith("subfinder wrote a line that does not decode")
    assert "missing required field `host`" in output.data.errors[1]
    assert [s.name for s in output.data.subdomains] == ["example.com", "ok.example.com"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty: the recon runner wrote nothing"),
        (b"\n\n", "empty: the recon runner wrote nothing"),
        (transcript.encode(transcript.End()), "expected the start record first, got End"),
        (
            transcript.encode(transcript.Start(domain="-d")),
            "start record: domain '-d' is not a valid hostname",
        ),
        (recon() + recon(), "a second start record"),
        (recon(end=False) + b'{"type": "bogus"}\n', "line 2: Invalid value 'bogus' - at `$.type`"),
        (
            recon(end=False) + b"{not json\n" + transcript.encode(transcript.End()),
            "line 2: not JSON",
        ),
        (recon(scope="*.example.com"), "start record: scope: scope entry '*.example.com'"),
        (b"<?xml version='1.0'?><nmaprun/>\n", "line 1: not JSON"),
    ],
)
def test_a_file_that_is_no_recon_output_is_a_parse_error(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(data)
    assert raised.value.tool == "dns"
    assert raised.value.reason.startswith(reason)


def test_a_last_line_cut_mid_write_is_partial() -> None:
    whole = recon(*RUN, end=False)
    output = parse(whole + b'{"type":"dnsx","line":"{\\"host\\": \\"ol')
    assert output.partial
    assert output.findings == parse(whole).findings


# --- bare subfinder and dnsx files --------------------------------------------------------


def test_subfinder_lines_judged_against_their_input() -> None:
    data = "\n".join(
        [
            sub("a.example.com"),
            sub("a.example.com", "alienvault"),
            json.dumps({"host": "b.example.com", "input": "example.com", "sources": ["x", "y"]}),
            sub("elsewhere.example.org"),
            json.dumps({"host": "legacy.example.net", "source": "crtsh"}),  # no input
        ]
    ).encode()
    output = parse_subfinder(data)
    assert [(f.title, f.evidence.get("sources")) for f in output.findings] == [
        ("Subdomain a.example.com", ("crtsh", "alienvault")),
        ("Subdomain b.example.com", ("x", "y")),
        ("Out-of-scope name elsewhere.example.org", ("crtsh",)),
        ("Subdomain legacy.example.net", ("crtsh",)),
    ]
    assert output.data.resolver == ""
    assert not any(s.resolved for s in output.data.subdomains)


def test_an_empty_subfinder_file_is_no_findings() -> None:
    output = parse_subfinder(b"")
    assert output.findings == ()
    assert not output.partial


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"source": "crtsh"}\n', "line 1: Object missing required field `host`"),
        (b'{"host": 5}\n', "line 1: Expected `str`, got `int` - at `$.host`"),
        (b'{"host": "a.b"}\n{"host": "c.d", "sources": "crtsh"}\n', "line 2: Expected `array`"),
        (b"a.example.com\n", "line 1: not JSON"),
        (b'["a.example.com"]\n', "line 1: Expected `object`, got `array`"),
    ],
)
def test_bad_subfinder_lines_are_parse_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_subfinder(data)
    assert raised.value.tool == "subfinder"
    assert raised.value.reason.startswith(reason)


def test_dnsx_lines_are_resolved_names() -> None:
    data = (
        dnsx("x.example.com", a=["10.0.0.1"]) + "\n" + dnsx("x.example.com", aaaa=["::1"])
    ).encode()
    (only,) = parse_dnsx(data).data.subdomains
    assert (only.name, only.a, only.aaaa, only.resolved) == (
        "x.example.com",
        ("10.0.0.1",),
        ("::1",),
        True,
    )


def test_bad_dnsx_lines_are_parse_errors() -> None:
    with pytest.raises(ParseError) as raised:
        parse_dnsx(b'{"host": "a.example.com", "a": "10.0.0.1"}\n')
    assert raised.value.tool == "dnsx"
    assert raised.value.reason == "line 1: Expected `array`, got `str` - at `$.a`"


# --- any sequence of JSON objects ---------------------------------------------------------

SUBFINDER_RECORDS = [
    {"host": "a.example.com", "input": "example.com", "source": "crtsh"},
    {"host": "b.example.com", "input": "example.com", "source": "alienvault"},
    {"host": "a.example.com", "input": "example.com", "source": "anubis"},
]
DNSX_RECORDS = [
    {"host": "a.example.com", "a": ["10.0.0.1"], "status_code": "NOERROR", "resolver": ["1:53"]},
    {"host": "b.example.com", "cname": ["a.example.com"], "status_code": "NOERROR"},
]


def json_lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def pretty(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record, indent=2).encode() + b"\n" for record in records)


@pytest.mark.parametrize(
    "layout",
    [
        pretty,
        lambda records: b"".join(json.dumps(r, indent="\t").encode() for r in records),
        lambda records: b" ".join(json.dumps(r).encode() for r in records) + b"\n",
        lambda records: b"\r\n\r\n".join(json.dumps(r, indent=4).encode() for r in records),
    ],
    ids=["pretty", "tabs-no-newlines", "one-line", "crlf-blank-lines"],
)
def test_subfinder_and_dnsx_objects_over_several_lines_read_like_json_lines(
    layout: Any,
) -> None:
    assert parse_subfinder(layout(SUBFINDER_RECORDS)) == parse_subfinder(
        json_lines(SUBFINDER_RECORDS)
    )
    assert parse_dnsx(layout(DNSX_RECORDS)) == parse_dnsx(json_lines(DNSX_RECORDS))
    assert len(parse_subfinder(layout(SUBFINDER_RECORDS)).data.subdomains) == 2
    assert not parse_dnsx(layout(DNSX_RECORDS)).partial


def test_a_pretty_printed_object_cut_by_the_end_of_the_file_makes_it_partial() -> None:
    whole = pretty(SUBFINDER_RECORDS[:2])
    output = parse_subfinder(whole + pretty(SUBFINDER_RECORDS[2:])[:30])
    assert output.partial
    assert output.data == parse_subfinder(whole).data.__class__(
        **{**msgspec_fields(parse_subfinder(whole).data), "partial": True}
    )


def msgspec_fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # The error is named on the line it is on, not the line the object started on.
        (b'{\n  "host": "a.example.com",\n  "source" "crtsh"\n}\n', "line 3: not JSON"),
        (pretty(SUBFINDER_RECORDS[:1]) + b'{\n  "host": 5\n}\n', "line 6: Expected `str`"),
        (b'{"host": "a.example.com"}\n{\n"host": "b.example.com"\n', "line 2: not JSON"),
        (
            b"# Subdomains of example.com\n\n- a.example.com\n",
            "line 1: not JSON objects: found Markdown text starting '# Subdomains of example.com'",
        ),
        (b"# Subdomains", "line 1: not JSON objects: found Markdown text"),
    ],
)
def test_text_that_is_not_a_sequence_of_objects_is_a_parse_error(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_subfinder(data)
    assert raised.value.reason.startswith(reason), raised.value.reason
