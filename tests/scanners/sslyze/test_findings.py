"""The severity rules of scanners/sslyze/findings.py, one table row at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from contracts.findings import Severity, fingerprint
from contracts.sslyze import (
    Certificate,
    CertificateDeployment,
    CipherSuite,
    ProtocolSupport,
    Server,
    TrustCheck,
    Vulnerabilities,
)
from scanners.sslyze.findings import classify_suite, server_findings

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEAF = Certificate(
    subject="CN=www.example.com",
    issuer="CN=Example CA",
    serial="12345",
    not_before=datetime(2026, 1, 1, tzinfo=UTC),
    not_after=datetime(2027, 1, 1, tzinfo=UTC),
    dns_names=("www.example.com",),
    key_algorithm="RSA",
    key_size=2048,
    signature_algorithm="sha256WithRSAEncryption",
    signature_hash="sha256",
    sha256="ab" * 32,
)
CA = Certificate(subject="CN=Example CA", issuer="CN=Root")
TRUSTED = (TrustCheck(store="Mozilla", trusted=True), TrustCheck(store="Apple", trusted=True))
GOOD = ProtocolSupport(
    version="TLS 1.2",
    supported=True,
    accepted=(CipherSuite(name="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", key_size=128),),
)
CLEAN = Vulnerabilities(
    heartbleed=False,
    ccs_injection=False,
    robot="NOT_VULNERABLE_NO_ORACLE",
    compression=False,
    secure_renegotiation=True,
    client_renegotiation_dos=False,
    fallback_scsv=True,
    early_data=False,
)


def server(
    leaf: Certificate = LEAF,
    trust: tuple[TrustCheck, ...] = TRUSTED,
    protocols: tuple[ProtocolSupport, ...] = (GOOD,),
    **changes: object,
) -> Server:
    deployment = CertificateDeployment(
        received_chain=(leaf, CA), trust=trust, hostname_matches=changes.pop("matches", True)
    )
    if "ocsp_status" in changes:
        deployment = msgspec.structs.replace(deployment, ocsp_status=changes.pop("ocsp_status"))
    vulns = msgspec.structs.replace(CLEAN, **changes)
    return Server(
        hostname="www.example.com",
        port=443,
        server_name="www.example.com",
        certificate_deployments=(deployment,),
        protocols=protocols,
        vulnerabilities=vulns,
    )


def found(s: Server, at: datetime | None = NOW) -> list[tuple[str, Severity]]:
    return [(f.title, f.severity) for f in server_findings(s, at)]


def untrusted(error: str) -> tuple[TrustCheck, ...]:
    return (TrustCheck(store="Mozilla", error=error), TrustCheck(store="Apple", error=error))


def test_a_clean_server_has_no_findings() -> None:
    assert found(server()) == []


H, M, L, C = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.CRITICAL


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        (server(heartbleed=True), [("Heartbleed", C)]),
        (server(ccs_injection=True), [("OpenSSL CCS injection", H)]),
        (server(robot="VULNERABLE_STRONG_ORACLE"), [("ROBOT", H)]),
        (server(robot="VULNERABLE_WEAK_ORACLE"), [("ROBOT", M)]),
        (server(robot="UNKNOWN_INCONSISTENT_RESULTS"), []),
        (server(robot="NOT_VULNERABLE_RSA_NOT_SUPPORTED"), []),
        (server(compression=True), [("TLS compression enabled (CRIME)", M)]),
        (server(secure_renegotiation=False), [("Secure renegotiation not supported", M)]),
        (server(client_renegotiation_dos=True), [("Client-initiated renegotiation accepted", L)]),
        (server(early_data=True), [("TLS 1.3 early data accepted", L)]),
        (server(heartbleed=None, ccs_injection=None, secure_renegotiation=None), []),
        (server(ocsp_status="REVOKED"), [("Certificate revoked", H)]),
        (server(ocsp_status="GOOD"), []),
        (server(matches=False), [("Certificate does not match the server name", H)]),
        (server(matches=None), []),
    ],
)  # fmt: skip
def test_vulnerability_and_certificate_rules(
    s: Server, expected: list[tuple[str, Severity]]
) -> None:
    assert found(s) == expected


def test_validity_is_judged_at_the_scan_time() -> None:
    expired = msgspec.structs.replace(LEAF, not_after=datetime(2026, 5, 31, tzinfo=UTC))
    early = msgspec.structs.replace(LEAF, not_before=datetime(2026, 6, 2, tzinfo=UTC))
    assert found(server(expired)) == [("Certificate expired", H)]
    assert found(server(early)) == [("Certificate not yet valid", H)]
    # No scan time (sslyze before 5.x): no verdict from dates.
    assert found(server(expired), at=None) == []
    [finding] = server_findings(server(expired), NOW)
    assert finding.description == "The certificate expired on 2026-05-31."


def test_a_chain_no_store_trusts_is_high() -> None:
    [(title, severity)] = found(server(trust=untrusted("unable to get local issuer certificate")))
    assert (title, severity) == ("Certificate not trusted", H)
    one_store = (TrustCheck(store="Mozilla", trusted=True), TrustCheck(store="Java", error="x"))
    assert found(server(trust=one_store)) == []
    assert found(server(trust=())) == []


def test_errors_other_findings_explain_add_no_untrusted_finding() -> None:
    # sslyze 6 fails path validation for a wrong name or an expired certificate too.
    name_error = untrusted("validation failed: leaf certificate has no matching subjectAltName")
    assert found(server(trust=name_error, matches=False)) == [
        ("Certificate does not match the server name", H)
    ]
    expired = msgspec.structs.replace(LEAF, not_after=datetime(2026, 5, 1, tzinfo=UTC))
    date_error = untrusted("validation failed: cert is not valid at validation time")
    assert found(server(expired, trust=date_error)) == [("Certificate expired", H)]
    # The same text without the finding that explains it is still a trust failure.
    assert found(server(trust=name_error, matches=True)) == [("Certificate not trusted", H)]


def test_a_self_signed_certificate_is_untrusted_even_when_its_name_error_came_first() -> None:
    own = msgspec.structs.replace(LEAF, issuer=LEAF.subject)
    s = server(trust=untrusted("no matching subjectAltName"), matches=False)
    s = msgspec.structs.replace(
        s,
        certificate_deployments=(
            msgspec.structs.replace(s.certificate_deployments[0], received_chain=(own,)),
        ),
    )
    findings = server_findings(s, NOW)
    assert [(f.title, f.severity) for f in findings] == [
        ("Certificate does not match the server name", H),
        ("Certificate not trusted", H),
    ]
    assert findings[1].description.endswith("(self-signed).")


@pytest.mark.parametrize(
    ("changes", "title"),
    [
        ({"key_size": 1024}, "Certificate key too small (RSA 1024 bits)"),
        ({"key_algorithm": "DSA", "key_size": 1024}, "Certificate key too small (DSA 1024 bits)"),
        ({"key_algorithm": "EC", "key_size": 192}, "Certificate key too small (EC 192 bits)"),
        ({"signature_hash": "sha1"}, "Certificate signed with SHA1"),
        ({"signature_hash": "md5"}, "Certificate signed with MD5"),
    ],
)
def test_weak_keys_and_signatures_are_medium(changes: dict[str, object], title: str) -> None:
    assert found(server(msgspec.structs.replace(LEAF, **changes))) == [(title, M)]


def test_ec_256_and_ed25519_keys_are_fine() -> None:
    for changes in ({"key_algorithm": "EC", "key_size": 256}, {"key_algorithm": "Ed25519"}):
        assert found(server(msgspec.structs.replace(LEAF, **changes))) == []


def _protocol(version: str, *names: str) -> ProtocolSupport:
    return ProtocolSupport(
        version=version, supported=True, accepted=tuple(CipherSuite(name=n) for n in names)
    )


@pytest.mark.parametrize(
    ("version", "severity"),
    [("SSL 2.0", H), ("SSL 3.0", H), ("TLS 1.0", M), ("TLS 1.1", M)],
)
def test_old_protocol_versions(version: str, severity: Severity) -> None:
    s = server(protocols=(_protocol(version, "TLS_RSA_WITH_AES_128_GCM_SHA256"), GOOD))
    assert found(s) == [(f"{version} accepted", severity)]


def test_unsupported_versions_are_no_finding() -> None:
    assert found(server(protocols=(ProtocolSupport(version="SSL 3.0"), GOOD))) == []


@pytest.mark.parametrize(
    ("suite", "verdict"),
    [
        (CipherSuite(name="TLS_RSA_WITH_NULL_SHA256"), (H, "no encryption")),
        (CipherSuite(name="TLS_DH_anon_WITH_AES_128_CBC_SHA"), (H, "no authentication")),
        (CipherSuite(name="TLS_ECDH_anon_WITH_RC4_128_SHA"), (H, "no authentication")),
        (CipherSuite(name="TLS_X", anonymous=True), (H, "no authentication")),
        (CipherSuite(name="TLS_RSA_EXPORT_WITH_RC4_40_MD5"), (H, "export")),
        (CipherSuite(name="TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA"), (H, "export")),
        (CipherSuite(name="TLS_RSA_WITH_RC4_128_SHA"), (M, "RC4")),
        (CipherSuite(name="TLS_RSA_WITH_3DES_EDE_CBC_SHA"), (M, "3DES")),
        (CipherSuite(name="TLS_RSA_WITH_DES_CBC_SHA"), (M, "DES")),
        (CipherSuite(name="SSL_CK_DES_192_EDE3_CBC_WITH_MD5"), (M, "DES")),
        (CipherSuite(name="SSL_CK_RC2_128_CBC_WITH_MD5"), (M, "RC2")),
        (CipherSuite(name="TLS_RSA_WITH_IDEA_CBC_SHA"), (M, "IDEA")),
        (CipherSuite(name="TLS_RSA_WITH_SEED_CBC_MD5"), (M, "MD5")),
        (CipherSuite(name="TLS_FOO_WITH_BAR_SHA", key_size=56), (M, "56-bit key")),
        (CipherSuite(name="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", key_size=128), None),
        (CipherSuite(name="TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"), None),
        (CipherSuite(name="TLS_RSA_WITH_SEED_CBC_SHA", key_size=128), None),
        (CipherSuite(name="TLS_AES_256_GCM_SHA384", key_size=256), None),
    ],
)  # fmt: skip
def test_cipher_suites_are_classified_by_name(
    suite: CipherSuite, verdict: tuple[Severity, str] | None
) -> None:
    assert classify_suite(suite) == verdict


def test_one_cipher_finding_per_version_at_its_worst_suite() -> None:
    weak = _protocol(
        "TLS 1.2",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_RC4_128_SHA",
    )
    [finding] = server_findings(server(protocols=(weak,)), NOW)
    assert (finding.title, finding.severity) == ("Weak cipher suites accepted over TLS 1.2", M)
    assert finding.evidence["suites"] == [
        {"name": "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "why": "3DES"},
        {"name": "TLS_RSA_WITH_RC4_128_SHA", "why": "RC4"},
    ]
    insecure = _protocol("TLS 1.2", "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_NULL_SHA")
    [finding] = server_findings(server(protocols=(insecure,)), NOW)
    assert (finding.title, finding.severity) == ("Insecure cipher suites accepted over TLS 1.2", H)


def test_fallback_scsv_matters_only_with_a_version_to_fall_back_to() -> None:
    missing = server(fallback_scsv=False)
    assert found(missing) == []  # TLS 1.2 alone
    two = (GOOD, _protocol("TLS 1.3", "TLS_AES_128_GCM_SHA256"))
    assert found(server(protocols=two, fallback_scsv=False)) == [
        ("TLS_FALLBACK_SCSV not supported", L)
    ]
    assert found(server(protocols=(), fallback_scsv=False)) == [
        ("TLS_FALLBACK_SCSV not supported", L)
    ]


def test_an_unreachable_server_has_no_findings() -> None:
    assert server_findings(Server(hostname="a.example", port=443, connected=False), NOW) == []


def test_fingerprints_are_location_based_and_stable() -> None:
    s = server(heartbleed=True, protocols=(_protocol("TLS 1.0", "TLS_RSA_WITH_RC4_128_SHA"),))
    s = msgspec.structs.replace(s, hostname="WWW.Example.com")
    by_title = {f.title: f for f in server_findings(s, NOW)}
    assert by_title["Heartbleed"].fingerprint == fingerprint(
        "sslyze", "www.example.com", 443, "heartbleed"
    )
    assert by_title["TLS 1.0 accepted"].fingerprint == fingerprint(
        "sslyze", "www.example.com", 443, "protocol", "TLS 1.0"
    )
    assert by_title["Weak cipher suites accepted over TLS 1.0"].fingerprint == fingerprint(
        "sslyze", "www.example.com", 443, "cipher-suites", "TLS 1.0"
    )
    # What changes between scans of the same service (address, scan time, the other suites,
    # error texts) changes no fingerprint.
    rescanned = msgspec.structs.replace(s, ip_address="192.0.2.9")
    later = datetime(2026, 7, 1, tzinfo=UTC)
    assert {f.fingerprint for f in server_findings(rescanned, later)} == {
        f.fingerprint for f in by_title.values()
    }


def test_certificate_findings_are_keyed_by_the_leaf_certificate() -> None:
    s = server(matches=False)
    [finding] = server_findings(s, NOW)
    assert finding.fingerprint == fingerprint(
        "sslyze", "www.example.com", 443, "certificate-hostname-mismatch", "ab" * 32
    )
    assert finding.evidence["sha256"] == "ab" * 32
    renewed = server(msgspec.structs.replace(LEAF, sha256="cd" * 32), matches=False)
    assert server_findings(renewed, NOW)[0].fingerprint != finding.fingerprint
    # A chain whose PEM was stripped falls back to issuer and serial.
    anonymous = server(msgspec.structs.replace(LEAF, sha256=""), matches=False)
    assert server_findings(anonymous, NOW)[0].fingerprint == fingerprint(
        "sslyze", "www.example.com", 443, "certificate-hostname-mismatch", "CN=Example CA#12345"
    )
