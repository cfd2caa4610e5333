"""sslyze 1.x/2.x JSON (`--json_out`, the `accepted_targets` layout) → `SslyzeRun`.

Those versions' `JsonOutputGenerator` dumped each object's `__dict__`: one entry per reachable
server under `accepted_targets` (`server_info` plus `commands_results`, keyed by the scan
command's CLI name: `certinfo`, `sslv2` ... `tlsv1_3`, `heartbleed`, `openssl_ccs`, `robot`,
`compression`, `reneg`, `fallback`, `early_data`), and `invalid_targets` as a list of
one-key objects `{server string: error}`. Enums are written by name (`TLSV1_2`,
`VULNERABLE_WEAK_ORACLE`), certificates as the same dict 3.0 still wrote (`serialNumber`,
`notAfter`, `publicKey.size` as a string). A command that raised is `{"error_message": ...}`.

What the layout cannot say stays at its default, as for 1.x/2.x XML: no scan time, no IANA
cipher suite names (the `name` property was not in `__dict__`: suites carry their OpenSSL
names), no IP SANs. 1.4.x and 2.x spell the certificate verdicts differently
(`certificate_matches_hostname` / `leaf_certificate_subject_matches_hostname`, ...); both
spellings are fields and the reader takes either.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from contracts.sslyze import (
    Certificate,
    CertificateDeployment,
    CipherSuite,
    CommandError,
    NotScanned,
    ProtocolSupport,
    Server,
    SslyzeRun,
    TrustCheck,
    Vulnerabilities,
)
from scanners.errors import ParseError
from scanners.sslyze.certificates import (
    der_sha256,
    hostname_matches,
    integer,
    key_algorithm,
    parse_time,
)

R = TypeVar("R", bound="_In")
_TOOL = "sslyze"
# Command CLI name → protocol version, in the order findings and data list them.
_PROTOCOLS = (
    ("sslv2", "SSL 2.0"),
    ("sslv3", "SSL 3.0"),
    ("tlsv1", "TLS 1.0"),
    ("tlsv1_1", "TLS 1.1"),
    ("tlsv1_2", "TLS 1.2"),
    ("tlsv1_3", "TLS 1.3"),
)
# OpenSslVersionEnum names, as `highest_ssl_version_supported` holds them.
_VERSIONS = {"SSLV2": "SSL 2.0", "SSLV3": "SSL 3.0", "TLSV1": "TLS 1.0"} | {
    f"TLSV1_{minor}": f"TLS 1.{minor}" for minor in range(1, 4)
}


class _In(msgspec.Struct, frozen=True, kw_only=True):
    # Set when the command raised (sslyze's PluginRaisedExceptionScanResult).
    error_message: str | None = None


class _Key(_In, frozen=True):
    algorithm: str = ""
    # Written with str(); an int accepted too, so nothing is lost either way.
    size: int | str | None = None
    curve: str | None = None


class _Names(_In, frozen=True):
    dns: tuple[str, ...] = msgspec.field(default=(), name="DNS")


class _Certificate(_In, frozen=True):
    as_pem: str = ""
    # A string from 1.4 on (`CN=..., O=...`); older nassl-based writers used other shapes.
    subject: Any = None
    issuer: Any = None
    serial: int | str | None = msgspec.field(default=None, name="serialNumber")
    not_before: str | None = msgspec.field(default=None, name="notBefore")
    not_after: str | None = msgspec.field(default=None, name="notAfter")
    signature: str | None = msgspec.field(default=None, name="signatureAlgorithm")
    key: _Key | None = msgspec.field(default=None, name="publicKey")
    names: _Names | None = msgspec.field(default=None, name="subjectAlternativeName")


class _TrustStore(_In, frozen=True):
    name: str = ""
    version: str = ""


class _PathValidation(_In, frozen=True):
    trust_store: _TrustStore = msgspec.field(default_factory=_TrustStore)
    verify_string: str = ""
    is_certificate_trusted: bool | None = None  # 1.x
    verified_certificate_chain: list[Any] | None = None  # 2.x


class _OcspSingle(_In, frozen=True):
    status: str = msgspec.field(default="", name="certStatus")


class _Ocsp(_In, frozen=True):
    responses: tuple[_OcspSingle, ...] = ()


class _CertInfo(_In, frozen=True):
    received_certificate_chain: tuple[_Certificate, ...] = ()
    certificate_chain: tuple[_Certificate, ...] = ()  # 1.x
    path_validation_result_list: tuple[_PathValidation, ...] = ()
    leaf_certificate_subject_matches_hostname: bool | None = None
    certificate_matches_hostname: bool | None = None  # 1.x
    received_chain_has_valid_order: bool | None = None
    is_certificate_chain_order_valid: bool | None = None  # 1.x
    leaf_certificate_is_ev: bool | None = None
    is_leaf_certificate_ev: bool | None = None  # 1.x
    leaf_certificate_has_must_staple_extension: bool | None = None
    certificate_has_must_staple_extension: bool | None = None  # 1.x
    verified_chain_has_sha1_signature: bool | None = None
    has_sha1_in_certificate_chain: bool | None = None  # 1.x
    ocsp_response: _Ocsp | None = None


class _Suite(_In, frozen=True):
    openssl_name: str = ""
    key_size: int | None = None
    is_anonymous: bool = False


class _Suites(_In, frozen=True):
    accepted_cipher_list: tuple[_Suite, ...] = ()
    errored_cipher_list: tuple[Any, ...] = ()


class _Heartbleed(_In, frozen=True):
    is_vulnerable_to_heartbleed: bool | None = None


class _Ccs(_In, frozen=True):
    is_vulnerable_to_ccs_injection: bool | None = None


class _Robot(_In, frozen=True):
    robot_result_enum: str = ""


class _Compression(_In, frozen=True):
    compression_name: str | None = None


class _Reneg(_In, frozen=True):
    accepts_client_renegotiation: bool | None = None
    supports_secure_renegotiation: bool | None = None


class _Fallback(_In, frozen=True):
    supports_fallback_scsv: bool | None = None


class _EarlyData(_In, frozen=True):
    is_early_data_supported: bool | None = None


class _Results(msgspec.Struct, frozen=True, kw_only=True):
    certinfo: _CertInfo | None = None
    sslv2: _Suites | None = None
    sslv3: _Suites | None = None
    tlsv1: _Suites | None = None
    tlsv1_1: _Suites | None = None
    tlsv1_2: _Suites | None = None
    tlsv1_3: _Suites | None = None
    heartbleed: _Heartbleed | None = None
    openssl_ccs: _Ccs | None = None
    robot: _Robot | None = None
    compression: _Compression | None = None
    reneg: _Reneg | None = None
    fallback: _Fallback | None = None
    early_data: _EarlyData | None = None


class _ServerInfo(msgspec.Struct, frozen=True, kw_only=True):
    hostname: str
    port: int
    ip_address: str | None = None
    tls_server_name_indication: str | None = None
    highest_ssl_version_supported: str | None = None


class _Target(msgspec.Struct, frozen=True, kw_only=True):
    server_info: _ServerInfo
    commands_results: _Results = msgspec.field(default_factory=_Results)


class _Output(msgspec.Struct, frozen=True, kw_only=True):
    accepted_targets: tuple[_Target, ...]
    invalid_targets: tuple[dict[str, str], ...] = ()
    sslyze_version: str = ""


_OUTPUT = msgspec.json.Decoder(_Output)


def read(text: bytes) -> SslyzeRun:
    """The `SslyzeRun` of a 1.x/2.x JSON document (valid UTF-8 JSON with `accepted_targets`)."""
    try:
        output = _OUTPUT.decode(text)
    except msgspec.ValidationError as exc:
        raise ParseError(_TOOL, f"unexpected sslyze 1.x/2.x JSON: {exc}") from exc
    servers = tuple(_server(target) for target in output.accepted_targets)
    not_scanned = tuple(
        NotScanned(server=server, reason=reason)
        for entry in output.invalid_targets
        for server, reason in entry.items()
    )
    return SslyzeRun(
        version=output.sslyze_version,
        output_format="json-early",
        servers=servers,
        not_scanned=not_scanned,
        partial=bool(not_scanned) or any(server.errors for server in servers),
    )


def _server(target: _Target) -> Server:
    info = target.server_info
    results = target.commands_results
    errors = [
        CommandError(command=name, reason=result.error_message)
        for name in results.__struct_fields__
        if (result := getattr(results, name)) is not None and result.error_message is not None
    ]
    name = info.tls_server_name_indication or info.hostname
    certinfo = _ok(results.certinfo)
    protocols = []
    for command, version in _PROTOCOLS:
        suites = _ok(getattr(results, command))
        if suites is None:
            continue
        protocols.append(_protocol(version, suites))
        if failed := len(suites.errored_cipher_list):
            errors.append(
                CommandError(command=command, reason=f"{failed} cipher suites not tested")
            )
    heartbleed = _ok(results.heartbleed)
    ccs = _ok(results.openssl_ccs)
    robot = _ok(results.robot)
    compression = _ok(results.compression)
    reneg = _ok(results.reneg)
    fallback = _ok(results.fallback)
    early_data = _ok(results.early_data)
    return Server(
        hostname=info.hostname,
        port=info.port,
        ip_address=info.ip_address or "",
        server_name=name,
        highest_tls_version=_VERSIONS.get(info.highest_ssl_version_supported or "", ""),
        certificate_deployments=() if certinfo is None else _deployments(certinfo, name),
        protocols=tuple(protocols),
        vulnerabilities=Vulnerabilities(
            heartbleed=heartbleed.is_vulnerable_to_heartbleed if heartbleed else None,
            ccs_injection=ccs.is_vulnerable_to_ccs_injection if ccs else None,
            robot=robot.robot_result_enum if robot else "",
            compression=(compression.compression_name is not None) if compression else None,
            secure_renegotiation=reneg.supports_secure_renegotiation if reneg else None,
            client_renegotiation_dos=reneg.accepts_client_renegotiation if reneg else None,
            fallback_scsv=fallback.supports_fallback_scsv if fallback else None,
            early_data=early_data.is_early_data_supported if early_data else None,
        ),
        errors=tuple(errors),
    )


def _ok(result: R | None) -> R | None:
    """The result of a command that ran to completion; None if it was not run or raised."""
    return None if result is None or result.error_message is not None else result


def _first(*values: bool | None) -> bool | None:
    return next((value for value in values if value is not None), None)


def _deployments(info: _CertInfo, name: str) -> tuple[CertificateDeployment, ...]:
    chain = tuple(
        _certificate(cert) for cert in info.received_certificate_chain or info.certificate_chain
    )
    if not chain:
        return ()
    matches = _first(
        info.leaf_certificate_subject_matches_hostname, info.certificate_matches_hostname
    )
    # Only where the leaf's names were written: 1.0-1.3 wrote certificates in another shape,
    # whose names this reader does not take, and no names must not read as "no match".
    if matches is None and name and chain[0].dns_names:
        matches = hostname_matches(name, chain[0].dns_names, ())
    ocsp = info.ocsp_response
    return (
        CertificateDeployment(
            received_chain=chain,
            trust=tuple(_trust(result) for result in info.path_validation_result_list),
            hostname_matches=matches,
            chain_order_valid=_first(
                info.received_chain_has_valid_order, info.is_certificate_chain_order_valid
            ),
            leaf_is_ev=_first(info.leaf_certificate_is_ev, info.is_leaf_certificate_ev),
            must_staple=_first(
                info.leaf_certificate_has_must_staple_extension,
                info.certificate_has_must_staple_extension,
            ),
            verified_chain_has_sha1_signature=_first(
                info.verified_chain_has_sha1_signature, info.has_sha1_in_certificate_chain
            ),
            ocsp_status=ocsp.responses[0].status.upper() if ocsp and ocsp.responses else "",
        ),
    )


def _certificate(cert: _Certificate) -> Certificate:
    key = cert.key
    return Certificate(
        subject=cert.subject if isinstance(cert.subject, str) else "",
        issuer=cert.issuer if isinstance(cert.issuer, str) else "",
        serial="" if cert.serial is None else str(cert.serial),
        not_before=parse_time(cert.not_before),
        not_after=parse_time(cert.not_after),
        dns_names=cert.names.dns if cert.names else (),
        key_algorithm=key_algorithm(key.algorithm) if key else "",
        key_size=integer(key.size) if key else None,
        curve=(key.curve or "") if key else "",
        signature_algorithm=cert.signature or "",
        signature_hash=cert.signature or "",
        sha256=der_sha256(cert.as_pem),
    )


def _trust(result: _PathValidation) -> TrustCheck:
    trusted = result.is_certificate_trusted
    if trusted is None:
        trusted = bool(result.verified_certificate_chain) or result.verify_string == "ok"
    return TrustCheck(
        store=result.trust_store.name,
        store_version=result.trust_store.version,
        trusted=trusted,
        error="" if trusted else result.verify_string,
    )


def _protocol(version: str, suites: _Suites) -> ProtocolSupport:
    accepted = tuple(
        CipherSuite(
            name=suite.openssl_name,
            openssl_name=suite.openssl_name,
            key_size=suite.key_size,
            anonymous=suite.is_anonymous,
        )
        for suite in suites.accepted_cipher_list
    )
    return ProtocolSupport(version=version, supported=bool(accepted), accepted=accepted)
