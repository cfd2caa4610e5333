"""sslyze 1.x/2.x JSON (`accepted_targets`) and 3.0's numbers written as strings.

The documents are built here in the shape those versions' `JsonOutputGenerator` wrote (each
result object's `__dict__`, enums by name, certificates as `serialNumber`/`notAfter`/
`publicKey.size` strings); no real file is copied in. The same facts written as 3.x JSON
must give the same findings.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from contracts.sslyze import CommandError, NotScanned, SslyzeRun
from scanners.sslyze.parse import parse, read

PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    + base64.b64encode(b"not a real certificate, only its bytes").decode()
    + "\n-----END CERTIFICATE-----\n"
)


def early_certificate(size: str = "1024") -> dict[str, Any]:
    return {
        "as_pem": PEM,
        "hpkp_pin": "x",
        "subject": "commonName=a.example",
        "issuer": "commonName=Example CA",
        "serialNumber": "123456789012345678901234567890",
        "notBefore": "2017-01-01 00:00:00",
        "notAfter": "2019-01-01 00:00:00",
        "signatureAlgorithm": "sha1",
        "publicKey": {"algorithm": "RSA", "size": size, "exponent": "65537"},
        "subjectAlternativeName": {"DNS": ["a.example"]},
    }


def suite(openssl_name: str, key_size: int, anonymous: bool = False) -> dict[str, Any]:
    return {
        "openssl_name": openssl_name,
        "ssl_version": "TLSV1",
        "is_anonymous": anonymous,
        "key_size": key_size,
        "post_handshake_response": "HTTP 200 OK",
    }


def sslyze2(**commands: Any) -> bytes:
    """A 2.1.x `--json_out` document with one reachable and one unreachable target."""
    server_info = {
        "hostname": "a.example",
        "port": 443,
        "ip_address": "192.0.2.1",
        "tls_wrapped_protocol": "PLAIN_TLS",
        "tls_server_name_indication": "a.example",
        "xmpp_to_hostname": None,
        "client_auth_credentials": None,
        "http_tunneling_settings": None,
        "highest_ssl_version_supported": "TLSV1_2",
        "openssl_cipher_string_supported": "ALL:COMPLEMENTOFALL",
        "client_auth_requirement": "DISABLED",
    }
    document = {
        "accepted_targets": [{"server_info": server_info, "commands_results": commands}],
        "invalid_targets": [{"b.example:443": "Could not connect to server: timed out"}],
        "sslyze_url": "https://github.com/nabla-c0d3/sslyze",
        "sslyze_version": "2.1.4",
        "total_scan_time": "12.5",
    }
    return json.dumps(document, indent=4, sort_keys=True).encode()


SSLYZE2_COMMANDS: dict[str, Any] = {
    "certinfo": {
        "received_certificate_chain": [early_certificate()],
        "path_validation_result_list": [
            {
                "trust_store": {"name": "Mozilla", "version": "2019-01", "path": "/x.pem"},
                "verified_certificate_chain": None,
                "verify_string": "unable to get local issuer certificate",
            }
        ],
        "path_validation_error_list": [],
        "leaf_certificate_subject_matches_hostname": False,
        "leaf_certificate_is_ev": False,
        "leaf_certificate_has_must_staple_extension": False,
        "received_chain_has_valid_order": True,
        "verified_chain_has_sha1_signature": None,
        "ocsp_response": {
            "responseStatus": "successful",
            "responses": [{"certStatus": "revoked", "thisUpdate": "x"}],
        },
        "ocsp_response_status": "SUCCESSFUL",
    },
    "tlsv1": {
        "accepted_cipher_list": [suite("AES128-SHA", 128)],
        "rejected_cipher_list": [],
        "errored_cipher_list": [],
        "preferred_cipher": suite("AES128-SHA", 128),
    },
    "sslv3": {
        "accepted_cipher_list": [],
        "rejected_cipher_list": [],
        "errored_cipher_list": [],
        "preferred_cipher": None,
    },
    "heartbleed": {"is_vulnerable_to_heartbleed": True},
    "openssl_ccs": {"is_vulnerable_to_ccs_injection": False},
    "robot": {"robot_result_enum": "VULNERABLE_WEAK_ORACLE"},
    "compression": {"compression_name": "zlib compression"},
    "reneg": {"accepts_client_renegotiation": True, "supports_secure_renegotiation": False},
    "fallback": {"supports_fallback_scsv": False},
    "early_data": {"is_early_data_supported": True},
}


def sslyze3_same_facts() -> bytes:
    """What sslyze 3.0 wrote for the same server: the layout the 3.x reader already knows."""
    certificate = early_certificate()
    certificate["subject"] = {"rfc4514_string": "CN=a.example"}
    certificate["issuer"] = {"rfc4514_string": "CN=Example CA"}
    results = {
        "certificate_info": {
            "hostname_used_for_server_name_indication": "a.example",
            "certificate_deployments": [
                {
                    "received_certificate_chain": [certificate],
                    "path_validation_results": [
                        {
                            "trust_store": {"name": "Mozilla", "version": "2019-01"},
                            "verified_certificate_chain": None,
                            "openssl_error_string": "unable to get local issuer certificate",
                        }
                    ],
                    "leaf_certificate_subject_matches_hostname": False,
                    "received_chain_has_valid_order": True,
                    "ocsp_response": {"certificate_status": "REVOKED"},
                }
            ],
        },
        "tls_1_0_cipher_suites": {
            "accepted_cipher_suites": [
                {"cipher_suite": {"name": "TLS_RSA_WITH_AES_128_CBC_SHA", "key_size": 128}}
            ]
        },
        "ssl_3_0_cipher_suites": {"accepted_cipher_suites": []},
        "heartbleed": {"is_vulnerable_to_heartbleed": True},
        "openssl_ccs_injection": {"is_vulnerable_to_ccs_injection": False},
        "robot": {"robot_result": "VULNERABLE_WEAK_ORACLE"},
        "tls_compression": {"supports_compression": True},
        "session_renegotiation": {
            "accepts_client_renegotiation": True,
            "supports_secure_renegotiation": False,
        },
        "tls_fallback_scsv": {"supports_fallback_scsv": False},
        "tls_1_3_early_data": {"supports_early_data": True},
    }
    document = {
        "server_scan_results": [
            {
                "server_info": {
                    "server_location": {
                        "hostname": "a.example",
                        "port": 443,
                        "ip_address": "192.0.2.1",
                    },
                    "network_configuration": {"tls_server_name_indication": "a.example"},
                    "tls_probing_result": {"highest_tls_version_supported": "TLS_1_2"},
                },
                "scan_commands_results": results,
                "scan_commands_errors": {},
            }
        ],
        "server_connectivity_errors": [
            {
                "server_string": "b.example:443",
                "error_message": "Could not connect to server: timed out",
            }
        ],
        "sslyze_version": "3.0.0",
        "total_scan_time": 12.5,
    }
    return json.dumps(document).encode()


def test_sslyze_2_json_reads_every_command_into_the_run() -> None:
    run = read(sslyze2(**SSLYZE2_COMMANDS))
    assert (run.version, run.output_format, run.partial) == ("2.1.4", "json-early", True)
    assert run.not_scanned == (
        NotScanned(server="b.example:443", reason="Could not connect to server: timed out"),
    )
    [server] = run.servers
    assert (server.hostname, server.port, server.ip_address) == ("a.example", 443, "192.0.2.1")
    assert server.highest_tls_version == "TLS 1.2"
    [deployment] = server.certificate_deployments
    [leaf] = deployment.received_chain
    assert (leaf.subject, leaf.serial) == ("commonName=a.example", "123456789012345678901234567890")
    assert (leaf.key_algorithm, leaf.key_size, leaf.signature_hash) == ("RSA", 1024, "sha1")
    assert leaf.sha256 and leaf.dns_names == ("a.example",)
    assert [(t.store, t.trusted, t.error) for t in deployment.trust] == [
        ("Mozilla", False, "unable to get local issuer certificate")
    ]
    assert (deployment.hostname_matches, deployment.ocsp_status) == (False, "REVOKED")
    assert [(p.version, p.supported) for p in server.protocols] == [
        ("SSL 3.0", False),
        ("TLS 1.0", True),
    ]
    vulns = server.vulnerabilities
    assert (vulns.heartbleed, vulns.ccs_injection, vulns.robot) == (
        True,
        False,
        "VULNERABLE_WEAK_ORACLE",
    )
    assert (vulns.compression, vulns.secure_renegotiation, vulns.client_renegotiation_dos) == (
        True,
        False,
        True,
    )
    assert (vulns.fallback_scsv, vulns.early_data) == (False, True)


def test_sslyze_2_json_gives_the_findings_sslyze_3_json_gives_for_the_same_facts() -> None:
    def findings(data: bytes) -> list[tuple[str, str, str, int]]:
        return sorted(
            (f.title, f.severity.value, f.host, f.port or 0) for f in parse(data).findings
        )

    early = findings(sslyze2(**SSLYZE2_COMMANDS))
    assert early == findings(sslyze3_same_facts())
    titles = {title for title, *_ in early}
    assert {"Heartbleed", "Certificate revoked", "TLS 1.0 accepted"} <= titles
    assert any(title.startswith("Certificate key too small (RSA 1024") for title in titles)


def test_sslyze_1_4_spellings_are_read_too() -> None:
    certinfo = {
        "certificate_chain": [early_certificate(size="4096")],
        "path_validation_result_list": [
            {
                "trust_store": {"name": "Apple", "version": "OS X 10.12"},
                "verify_string": "ok",
                "is_certificate_trusted": True,
            }
        ],
        "certificate_matches_hostname": True,
        "is_certificate_chain_order_valid": False,
        "is_leaf_certificate_ev": True,
        "certificate_has_must_staple_extension": True,
        "has_sha1_in_certificate_chain": True,
        "ocsp_response": None,
    }
    run = read(sslyze2(certinfo=certinfo))
    [deployment] = run.servers[0].certificate_deployments
    assert deployment.received_chain[0].key_size == 4096
    assert [(t.store, t.trusted, t.error) for t in deployment.trust] == [("Apple", True, "")]
    assert (deployment.hostname_matches, deployment.chain_order_valid) == (True, False)
    assert (deployment.leaf_is_ev, deployment.must_staple) == (True, True)
    assert deployment.verified_chain_has_sha1_signature is True


def test_openssl_suite_names_are_judged_like_iana_names() -> None:
    tlsv1 = {
        "accepted_cipher_list": [
            suite("DES-CBC3-SHA", 168),
            suite("EXP-RC4-MD5", 40),
            suite("ADH-AES128-SHA", 128, anonymous=True),
            suite("AES256-GCM-SHA384", 256),
        ],
        "errored_cipher_list": [],
    }
    output = parse(sslyze2(tlsv1=tlsv1))
    assert isinstance(output.data, SslyzeRun)
    [protocol] = output.data.servers[0].protocols
    assert protocol.accepted[0].name == "DES-CBC3-SHA"
    [weak] = [f for f in output.findings if "cipher" in f.title.lower()]
    flagged = {entry["name"]: entry["why"] for entry in weak.evidence["suites"]}  # type: ignore[index]
    assert flagged == {
        "DES-CBC3-SHA": "DES",
        "EXP-RC4-MD5": "export",
        "ADH-AES128-SHA": "no authentication",
    }


def test_a_command_that_raised_is_an_error_and_the_run_partial() -> None:
    commands = {
        "robot": {"error_message": "ConnectionResetError - [Errno 104] reset by peer"},
        "sslv2": {
            "accepted_cipher_list": [],
            "errored_cipher_list": [{"openssl_name": "RC4-MD5", "error_message": "timeout"}],
        },
        "heartbleed": {"is_vulnerable_to_heartbleed": False},
    }
    document = json.loads(sslyze2(**commands))
    document["invalid_targets"] = []
    output = parse(json.dumps(document).encode())
    assert output.partial
    [server] = output.data.servers  # type: ignore[union-attr]
    assert server.errors == (
        CommandError(command="robot", reason="ConnectionResetError - [Errno 104] reset by peer"),
        CommandError(command="sslv2", reason="1 cipher suites not tested"),
    )
    assert (server.vulnerabilities.robot, server.vulnerabilities.heartbleed) == ("", False)


def test_sslyze_3_0_numbers_written_as_strings_are_read_as_numbers() -> None:
    # sslyze 3.0's certificate writer kept 1.x's str() for the key size; the parser refused
    # such files with "Expected `int | null`, got `str`".
    document = json.loads(sslyze3_same_facts())
    results = document["server_scan_results"][0]["scan_commands_results"]
    chain = results["certificate_info"]["certificate_deployments"][0]["received_certificate_chain"]
    assert chain[0]["publicKey"]["size"] == "1024"
    run = read(json.dumps(document).encode())
    leaf = run.servers[0].certificate_deployments[0].received_chain[0]
    assert (leaf.key_size, leaf.serial) == (1024, "123456789012345678901234567890")
    chain[0]["publicKey"]["size"] = 1024
    assert read(json.dumps(document).encode()) == run


def test_a_certificate_in_an_unknown_shape_costs_its_facts_not_a_false_finding() -> None:
    # sslyze 1.0-1.3 wrote nassl's certificate dict (`as_dict`), with no top-level names.
    certinfo = {
        "certificate_chain": [{"as_pem": PEM, "as_dict": {"subject": {"commonName": "a"}}}],
        "path_validation_result_list": [],
    }
    output = parse(sslyze2(certinfo=certinfo))
    [deployment] = output.data.servers[0].certificate_deployments  # type: ignore[union-attr]
    assert deployment.hostname_matches is None
    assert deployment.received_chain[0].sha256
    assert not [f for f in output.findings if f.title.startswith("Certificate")]
