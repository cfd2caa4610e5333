"""The parser's handling of each format's edges, on small hand-built documents.

Real outputs of every generation are in test_parse_corpus.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.sslyze import CommandError, NotScanned, SslyzeRun
from scanners.errors import ParseError
from scanners.sslyze.parse import parse, read


def modern(*servers: dict[str, Any], **top: Any) -> bytes:
    document = {
        "server_scan_results": list(servers),
        "invalid_server_strings": [],
        "date_scans_started": "2026-01-02T03:04:05Z",
        "date_scans_completed": "2026-01-02T03:04:35Z",
        "sslyze_version": "6.3.1",
        **top,
    }
    return json.dumps(document).encode()


def connected(**scan_result: Any) -> dict[str, Any]:
    return {
        "server_location": {"hostname": "a.example", "port": 443, "ip_address": "192.0.2.1"},
        "network_configuration": {"tls_server_name_indication": "a.example"},
        "connectivity_status": "COMPLETED",
        "connectivity_result": {"highest_tls_version_supported": "TLS_1_3"},
        "scan_status": "COMPLETED",
        "scan_result": scan_result,
    }


def done(result: dict[str, Any]) -> dict[str, Any]:
    return {"status": "COMPLETED", "result": result}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty output"),
        (b" \n\t", "empty output"),
        (b"\xef\xbb\xbf", "empty output"),
        (b"Traceback (most recent call last):", "neither sslyze JSON"),
        (b"[]", "neither sslyze JSON"),
        (b'{"server_scan_results": [', "not valid JSON (cut short?)"),
        (b'{"accepted_targets": {}, "sslyze_version": "2.1.4"}', "unexpected sslyze 1.x/2.x JSON"),
        (b"# TLS report\n\n| host | grade |\n", "found Markdown text starting '# TLS report'"),
        (b'{"hosts": []}', "without server_scan_results is not sslyze output"),
        (b'{"server_scan_results": {}}', "unexpected sslyze JSON: Expected `array`"),
        (
            modern({"server_location": {"hostname": "a", "port": "443"}}),
            "Expected `int`, got `str` - at `$.server_scan_results[0].server_location.port`",
        ),
        (
            modern(connected(heartbleed=done({"is_vulnerable_to_heartbleed": "no"}))),
            "at `$.server_scan_results[0].scan_result.heartbleed.result",
        ),
        (
            b'{"server_scan_results": [{"server_info": {}}], "total_scan_time": 1.0}',
            "Object missing required field `server_location`",
        ),
        (b"<html><body/></html>", "XML root is <html>"),
        (b"<document><results>", "not well-formed XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            b'<document SSLyzeVersion="1.4.3">&b;</document>',
            "forbidden XML construct",
        ),
        (
            b'<document SSLyzeVersion="1.4.3"><results><target host="a" port="x"/></results>'
            b"</document>",
            "port='x' is not a port number",
        ),
        (
            b'<document SSLyzeVersion="1.4.3"><results><target port="443"/></results></document>',
            "<target> has no host",
        ),
        (
            b'<document SSLyzeVersion="1.4.3"><results><server/></results></document>',
            "<results> holds <server>, not <target>",
        ),
    ],
)
def test_unreadable_output_is_a_parse_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(data)
    assert raised.value.tool == "sslyze"
    assert reason in raised.value.reason


def test_a_bom_and_surrounding_whitespace_are_fine() -> None:
    assert read(b"\xef\xbb\xbf\n" + modern() + b"\n") == read(modern())


def test_no_servers_is_an_empty_complete_run() -> None:
    output = parse(modern())
    assert output.findings == () and not output.partial
    assert isinstance(output.data, SslyzeRun)
    assert (output.data.version, output.data.output_format) == ("6.3.1", "json")
    assert output.data.completed is not None and output.data.completed.second == 35


def test_a_server_sslyze_could_not_reach_makes_the_run_partial() -> None:
    unreachable = {
        "server_location": {"hostname": "a.example", "port": 443, "ip_address": None},
        "connectivity_status": "ERROR",
        "connectivity_error_trace": "Traceback...\n  File\nsslyze.errors.Timeout: timed out\n",
        "scan_status": "ERROR_NO_CONNECTIVITY",
        "scan_result": None,
    }
    run = read(modern(unreachable))
    [server] = run.servers
    assert (server.connected, server.error) == (False, "sslyze.errors.Timeout: timed out")
    assert run.partial
    assert parse(modern(unreachable)).findings == ()


def test_failed_commands_are_recorded_and_make_the_run_partial() -> None:
    document = modern(
        connected(
            certificate_info={"status": "ERROR", "error_reason": None, "error_trace": None},
            robot={"status": "ERROR", "error_reason": "CONNECTIVITY_ISSUE", "error_trace": "..."},
            heartbleed=None,  # written as null by some 5.x outputs: not run
            tls_compression={"status": "NOT_SCHEDULED", "result": None},
            openssl_ccs_injection=done({"is_vulnerable_to_ccs_injection": True}),
        )
    )
    output = parse(document)
    assert output.partial
    [server] = output.data.servers
    assert server.errors == (
        CommandError(command="certificate_info", reason="ERROR"),
        CommandError(command="robot", reason="CONNECTIVITY_ISSUE"),
    )
    assert server.vulnerabilities.heartbleed is None
    assert server.vulnerabilities.compression is None
    assert server.highest_tls_version == "TLS 1.3"
    assert [f.title for f in output.findings] == ["OpenSSL CCS injection"]


def test_refused_target_strings_are_not_scanned_and_partial() -> None:
    run = read(modern(invalid_server_strings=[{"server_string": "a:x", "error_message": "bad"}]))
    assert run.not_scanned == (NotScanned(server="a:x", reason="bad"),)
    assert run.partial


def test_legacy_json_reads_errors_and_unreachable_targets() -> None:
    document = {
        "server_connectivity_errors": [
            {"server_string": "192.0.2.7:443", "error_message": "Connection timed out"}
        ],
        "server_scan_results": [
            {
                "server_info": {"server_location": {"hostname": "b.example", "port": 8443}},
                "scan_commands_results": {
                    "heartbleed": {"is_vulnerable_to_heartbleed": True},
                    "tls_1_0_cipher_suites": {
                        "accepted_cipher_suites": [
                            {"cipher_suite": {"name": "TLS_RSA_WITH_AES_128_CBC_SHA"}}
                        ]
                    },
                },
                "scan_commands_errors": {
                    "robot": {"reason": "", "exception_trace": "Traceback\nValueError: boom\n"}
                },
            }
        ],
        "sslyze_version": "3.0.0",
        "total_scan_time": 2.5,
    }
    output = parse(json.dumps(document).encode())
    assert isinstance(output.data, SslyzeRun)
    assert output.data.output_format == "json-legacy"
    assert output.data.started is None and output.partial
    assert output.data.not_scanned == (
        NotScanned(server="192.0.2.7:443", reason="Connection timed out"),
    )
    [server] = output.data.servers
    assert server.errors == (CommandError(command="robot", reason="ValueError: boom"),)
    # Before 5.x, a version counts as supported when some suite was accepted.
    assert [(p.version, p.supported) for p in server.protocols] == [("TLS 1.0", True)]
    assert [(f.title, f.port) for f in output.findings] == [
        ("TLS 1.0 accepted", 8443),
        ("Heartbleed", 8443),
    ]


def test_one_fingerprint_once_even_when_a_server_is_listed_twice() -> None:
    twice = modern(
        connected(heartbleed=done({"is_vulnerable_to_heartbleed": True})),
        connected(heartbleed=done({"is_vulnerable_to_heartbleed": True})),
    )
    output = parse(twice)
    assert [f.title for f in output.findings] == ["Heartbleed"]
    assert len(output.data.servers) == 2
