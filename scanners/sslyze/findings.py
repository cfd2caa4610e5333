"""Findings from one scanned TLS server, with the severity rules below.

| finding                                                       | severity |
|---------------------------------------------------------------|----------|
| Heartbleed (CVE-2014-0160)                                    | critical |
| certificate expired, or not yet valid                         | high     |
| certificate not trusted by any bundled trust store            | high     |
| certificate does not match the server name                    | high     |
| certificate revoked (stapled OCSP response)                   | high     |
| SSL 2.0 or SSL 3.0 accepted                                   | high     |
| OpenSSL CCS injection (CVE-2014-0224)                         | high     |
| ROBOT with a strong oracle                                    | high     |
| insecure cipher suites: NULL, anonymous or export             | high     |
| ROBOT with a weak oracle                                      | medium   |
| TLS 1.0 or TLS 1.1 accepted                                   | medium   |
| weak cipher suites: RC4, DES, 3DES, RC2, IDEA, MD5, < 128 bit | medium   |
| TLS compression (CRIME)                                       | medium   |
| no secure renegotiation (CVE-2009-3555)                       | medium   |
| leaf key too small: RSA/DSA under 2048 bits, EC under 224     | medium   |
| leaf signed with MD5 or SHA-1                                 | medium   |
| client-initiated renegotiation (DoS)                          | low      |
| no TLS_FALLBACK_SCSV while more than one version is accepted  | low      |
| TLS 1.3 early data (0-RTT, replayable) accepted               | low      |

Decisions:
- Fingerprints are (host, port, check) for a server-wide check, (host, port, check, version)
  for a protocol version, and (host, port, check, leaf SHA-256) for a certificate check, so a
  rescan of the same service updates the same rows and a new certificate starts its own.
  `host` is the name the scan was given, never the resolved address (DNS may rotate).
- Validity is judged at the scan's own time (5.x on). Outputs without one (1.x-4.x) get no
  expiry verdict from dates; an expired chain there still fails trust, which is reported.
- sslyze 6 validates the name and the dates inside path validation, so a wrong-host or expired
  certificate also fails every trust store. A trust failure whose every store error is the
  name or validity problem already reported adds no "not trusted" finding: one cause, one
  finding. Any other error (unknown issuer, missing extension...) is reported. sslyze 6 names
  only the first error, so a self-signed certificate (one certificate, its own issuer) that
  also has the wrong name is reported as not trusted either way.
- A cipher-suite finding is one per protocol version, listing each offending suite and why;
  its severity is the worst suite's. TLS 1.3's suites are all sound and never listed.
- Heartbleed, CCS injection, ROBOT and the rest are reported when sslyze says so; a check
  that did not run (None) is no finding, and the run says `partial` if it failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.findings import Finding, Severity, fingerprint
from contracts.sslyze import (
    Certificate,
    CertificateDeployment,
    CipherSuite,
    ProtocolSupport,
    Server,
)

_TOOL = "sslyze"
_PROTOCOL_SEVERITY = {
    "SSL 2.0": Severity.HIGH,
    "SSL 3.0": Severity.HIGH,
    "TLS 1.0": Severity.MEDIUM,
    "TLS 1.1": Severity.MEDIUM,
}
_PROTOCOL_REFERENCES = {
    "SSL 2.0": ("https://nvd.nist.gov/vuln/detail/CVE-2016-0800",),
    "SSL 3.0": ("https://nvd.nist.gov/vuln/detail/CVE-2014-3566",),
    "TLS 1.0": ("https://datatracker.ietf.org/doc/html/rfc8996",),
    "TLS 1.1": ("https://datatracker.ietf.org/doc/html/rfc8996",),
}
# Suite name tokens (IANA names split on "_", OpenSSL names on "-") and why each makes a
# suite insecure or weak. "EXP" is OpenSSL's spelling of EXPORT, which it also covers.
_INSECURE_TOKENS = {"NULL": "no encryption", "ANON": "no authentication", "EXP": "export"}
_WEAK_TOKENS = {
    "RC4": "RC4",
    "RC2": "RC2",
    "DES": "DES",
    "3DES": "3DES",
    "DES40": "DES",
    "IDEA": "IDEA",
    "MD5": "MD5",
}
_MIN_KEY_BITS = {"RSA": 2048, "DSA": 2048, "EC": 224}
_WEAK_SIGNATURE_HASHES = {"md2", "md5", "sha1"}
# Path validation errors that name a problem the hostname or validity checks report already:
# sslyze 6 (cryptography's verifier) and OpenSSL's texts (sslyze up to 5).
_NAME_ERRORS = ("subjectaltname", "hostname mismatch")
_VALIDITY_ERRORS = ("not valid at validation time", "has expired", "is not yet valid")
_ROBOT = {
    "VULNERABLE_STRONG_ORACLE": Severity.HIGH,
    "VULNERABLE_WEAK_ORACLE": Severity.MEDIUM,
}


def server_findings(server: Server, at: datetime | None) -> list[Finding]:
    """Every finding for one server; `at` is when it was scanned, if the output says."""
    if not server.connected:
        return []
    findings: list[Finding] = []
    for deployment in server.certificate_deployments:
        findings += _certificate_findings(server, deployment, at)
    accepted_versions = [p.version for p in server.protocols if p.supported]
    for protocol in server.protocols:
        findings += _protocol_findings(server, protocol)
    findings += _vulnerability_findings(server, accepted_versions)
    return findings


def classify_suite(suite: CipherSuite) -> tuple[Severity, str] | None:
    """(HIGH, why) for an insecure suite, (MEDIUM, why) for a weak one, None if sound."""
    tokens = suite.name.upper().replace("-", "_").split("_")
    if suite.anonymous:
        return Severity.HIGH, "no authentication"
    for token in tokens:
        for prefix, why in _INSECURE_TOKENS.items():
            if token.startswith(prefix):
                return Severity.HIGH, why
    for token in tokens:
        if token in _WEAK_TOKENS:
            return Severity.MEDIUM, _WEAK_TOKENS[token]
    if suite.key_size is not None and suite.key_size < 128:
        return Severity.MEDIUM, f"{suite.key_size}-bit key"
    return None


def _certificate_findings(
    server: Server, deployment: CertificateDeployment, at: datetime | None
) -> list[Finding]:
    if not deployment.received_chain:
        return []
    leaf = deployment.received_chain[0]
    identity = leaf.sha256 or f"{leaf.issuer}#{leaf.serial}"
    evidence = _certificate_evidence(leaf, deployment)

    def finding(check: str, severity: Severity, title: str, description: str) -> Finding:
        return _finding(server, (check, identity), severity, title, description, evidence)

    found: list[Finding] = []
    expired = at is not None and leaf.not_after is not None and leaf.not_after < at
    early = at is not None and leaf.not_before is not None and leaf.not_before > at
    if expired and leaf.not_after is not None:
        found.append(
            finding(
                "certificate-expired",
                Severity.HIGH,
                "Certificate expired",
                f"The certificate expired on {leaf.not_after:%Y-%m-%d}.",
            )
        )
    if early and leaf.not_before is not None:
        found.append(
            finding(
                "certificate-not-yet-valid",
                Severity.HIGH,
                "Certificate not yet valid",
                f"The certificate is valid only from {leaf.not_before:%Y-%m-%d}.",
            )
        )
    mismatch = deployment.hostname_matches is False
    if mismatch:
        found.append(
            finding(
                "certificate-hostname-mismatch",
                Severity.HIGH,
                "Certificate does not match the server name",
                f"No name in the certificate covers {server.server_name or server.hostname!r}.",
            )
        )
    self_signed = leaf.subject == leaf.issuer and len(deployment.received_chain) == 1
    untrusted = _untrusted_reason(deployment, mismatch, expired or early, self_signed)
    if untrusted is not None:
        found.append(
            finding(
                "certificate-untrusted",
                Severity.HIGH,
                "Certificate not trusted",
                "No trust store sslyze bundles validates the chain"
                + (" (self-signed)" if self_signed else "")
                + (f": {untrusted}" if untrusted else "."),
            )
        )
    if deployment.ocsp_status == "REVOKED":
        found.append(
            finding(
                "certificate-revoked",
                Severity.HIGH,
                "Certificate revoked",
                "The OCSP response the server staples says the certificate is revoked.",
            )
        )
    minimum = _MIN_KEY_BITS.get(leaf.key_algorithm)
    if minimum is not None and leaf.key_size is not None and leaf.key_size < minimum:
        found.append(
            finding(
                "certificate-weak-key",
                Severity.MEDIUM,
                f"Certificate key too small ({leaf.key_algorithm} {leaf.key_size} bits)",
                f"A {leaf.key_algorithm} key needs at least {minimum} bits.",
            )
        )
    if leaf.signature_hash.lower() in _WEAK_SIGNATURE_HASHES:
        found.append(
            finding(
                "certificate-weak-signature",
                Severity.MEDIUM,
                f"Certificate signed with {leaf.signature_hash.upper()}",
                "Collisions for this hash are practical; certificates need SHA-256 or better.",
            )
        )
    return found


def _untrusted_reason(
    deployment: CertificateDeployment, mismatch: bool, invalid_dates: bool, self_signed: bool
) -> str | None:
    """Why no store trusts the chain ("" for a self-signed one whose errors say nothing
    more), unless another finding says it already; None when some store trusts the chain or
    none was checked.
    """
    if not deployment.trust or any(check.trusted for check in deployment.trust):
        return None
    for check in deployment.trust:
        error = check.error.lower()
        if mismatch and any(text in error for text in _NAME_ERRORS):
            continue
        if invalid_dates and any(text in error for text in _VALIDITY_ERRORS):
            continue
        return check.error or f"rejected by the {check.store} store"
    return "" if self_signed else None


def _certificate_evidence(leaf: Certificate, deployment: CertificateDeployment) -> dict[str, Any]:
    return {
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "serial": leaf.serial,
        "sha256": leaf.sha256,
        "not_before": leaf.not_before,
        "not_after": leaf.not_after,
        "dns_names": leaf.dns_names,
        "ip_addresses": leaf.ip_addresses,
        "key": f"{leaf.key_algorithm} {leaf.key_size or ''}".strip(),
        "signature_algorithm": leaf.signature_algorithm,
        "trust": {check.store: check.error or "trusted" for check in deployment.trust},
    }


def _protocol_findings(server: Server, protocol: ProtocolSupport) -> list[Finding]:
    found: list[Finding] = []
    if not protocol.supported:
        return found
    severity = _PROTOCOL_SEVERITY.get(protocol.version)
    if severity is not None:
        found.append(
            _finding(
                server,
                ("protocol", protocol.version),
                severity,
                f"{protocol.version} accepted",
                f"The server accepts {protocol.version}, which is deprecated and broken.",
                {"version": protocol.version, "accepted": [s.name for s in protocol.accepted]},
                _PROTOCOL_REFERENCES.get(protocol.version, ()),
            )
        )
    flagged = [
        (suite, verdict) for suite in protocol.accepted if (verdict := classify_suite(suite))
    ]
    if flagged and protocol.version != "TLS 1.3":
        worst = max((verdict[0] for _, verdict in flagged), key=lambda s: s.rank)
        kind = "Insecure" if worst is Severity.HIGH else "Weak"
        found.append(
            _finding(
                server,
                ("cipher-suites", protocol.version),
                worst,
                f"{kind} cipher suites accepted over {protocol.version}",
                f"{len(flagged)} of the {len(protocol.accepted)} accepted suites"
                f" {'is' if len(flagged) == 1 else 'are'} insecure or weak:"
                f" {', '.join(dict.fromkeys(why for _, (_, why) in flagged))}.",
                {
                    "version": protocol.version,
                    "suites": [{"name": s.name, "why": why} for s, (_, why) in flagged],
                },
            )
        )
    return found


def _vulnerability_findings(server: Server, accepted_versions: list[str]) -> list[Finding]:
    vulns = server.vulnerabilities
    found: list[Finding] = []

    def add(check: str, severity: Severity, title: str, description: str, *refs: str) -> None:
        found.append(_finding(server, (check,), severity, title, description, {}, refs))

    if vulns.heartbleed:
        add(
            "heartbleed",
            Severity.CRITICAL,
            "Heartbleed",
            "The server leaks process memory through TLS heartbeats (CVE-2014-0160).",
            "https://nvd.nist.gov/vuln/detail/CVE-2014-0160",
        )
    if vulns.ccs_injection:
        add(
            "ccs-injection",
            Severity.HIGH,
            "OpenSSL CCS injection",
            "A man in the middle can make the server use weak keys (CVE-2014-0224).",
            "https://nvd.nist.gov/vuln/detail/CVE-2014-0224",
        )
    if (robot := _ROBOT.get(vulns.robot)) is not None:
        add(
            "robot",
            robot,
            "ROBOT",
            f"RSA key exchange is a padding oracle ({vulns.robot}): traffic can be decrypted.",
            "https://robotattack.org/",
        )
    if vulns.compression:
        add(
            "compression",
            Severity.MEDIUM,
            "TLS compression enabled (CRIME)",
            "Compressed TLS lets an attacker recover secrets such as cookies (CVE-2012-4929).",
            "https://nvd.nist.gov/vuln/detail/CVE-2012-4929",
        )
    if vulns.secure_renegotiation is False:
        add(
            "insecure-renegotiation",
            Severity.MEDIUM,
            "Secure renegotiation not supported",
            "Without RFC 5746, renegotiation allows prefix injection (CVE-2009-3555).",
            "https://nvd.nist.gov/vuln/detail/CVE-2009-3555",
        )
    if vulns.client_renegotiation_dos:
        add(
            "client-renegotiation",
            Severity.LOW,
            "Client-initiated renegotiation accepted",
            "Clients can make the server renegotiate repeatedly, a cheap denial of service.",
        )
    if vulns.fallback_scsv is False and len(accepted_versions) != 1:
        add(
            "no-fallback-scsv",
            Severity.LOW,
            "TLS_FALLBACK_SCSV not supported",
            "Nothing stops a man in the middle from downgrading the protocol version.",
            "https://datatracker.ietf.org/doc/html/rfc7507",
        )
    if vulns.early_data:
        add(
            "early-data",
            Severity.LOW,
            "TLS 1.3 early data accepted",
            "0-RTT data can be replayed; only idempotent requests may use it.",
            "https://datatracker.ietf.org/doc/html/rfc8446#section-8",
        )
    return found


def _finding(
    server: Server,
    location: tuple[str, ...],
    severity: Severity,
    title: str,
    description: str,
    evidence: dict[str, Any],
    references: tuple[str, ...] = (),
) -> Finding:
    host = server.hostname.lower()
    return Finding(
        tool=_TOOL,
        severity=severity,
        title=title,
        fingerprint=fingerprint(_TOOL, host, server.port, *location),
        description=description,
        host=host,
        port=server.port,
        protocol="tcp",
        evidence=evidence,
        references=references,
    )
