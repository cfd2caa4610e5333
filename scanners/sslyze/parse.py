"""sslyze output → `ToolOutput`: normalised findings plus `SslyzeRun` data.

Formats, told apart by shape, not by the version string:
- JSON with `server_scan_results[].scan_result` (5.x, 6.x): what jetscan runs.
- JSON with `server_scan_results[].scan_commands_results` and `server_connectivity_errors` or
  `total_scan_time` (3.x, 4.x).
- JSON with `accepted_targets` (1.x, 2.x), as their `JsonOutputGenerator` wrote it
  (`early_json`).
- XML `<document SSLyzeVersion=...>` (1.x, 2.x), through defusedxml (`xml_report`).
- Refused with a `ParseError` that says what it found: anything that is not one of the above.

Numbers that sslyze 1.x-3.0 wrote as strings (a public key's `size`, a serial number) are
read as the numbers they spell; the text is the whole number, so nothing is lost.

A server sslyze could not reach, a scan command that errored and a target string it refused
make the output `partial` (findings there were not checked), never a parse error: the rest
of the run is real. sslyze writes its JSON in one piece at the end, so a cut file is not
JSON at all and is refused. The documents are small (about 0.2-1.5 MB per server), so the
stream is read whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TypeVar

import msgspec

from contracts.findings import Finding
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
from scanners.output import ToolOutput, found, utf8
from scanners.sslyze import early_json, schema, xml_report
from scanners.sslyze.certificates import (
    der_sha256,
    hostname_matches,
    integer,
    key_algorithm,
    parse_time,
    sha256_from_base64,
)
from scanners.sslyze.findings import server_findings

T = TypeVar("T")
_TOOL = "sslyze"
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LEGACY_KEYS = ("server_connectivity_errors", "total_scan_time")
# Scan command → protocol version, in the order findings and data list them.
PROTOCOLS = (
    ("ssl_2_0_cipher_suites", "SSL 2.0"),
    ("ssl_3_0_cipher_suites", "SSL 3.0"),
    ("tls_1_0_cipher_suites", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "TLS 1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3"),
)


def parse(data: bytes) -> ToolOutput:
    """Parse any supported sslyze output; `ParseError` with a reason for anything else."""
    run = read(data)
    # Certificate validity is judged at the time of the scan, not of the parse, so a stored
    # output reads the same forever. Outputs before 5.x carry no time (see findings).
    at = run.completed or run.started
    findings: dict[str, Finding] = {}
    for server in run.servers:
        for finding in server_findings(server, at):
            findings.setdefault(finding.fingerprint, finding)
    return ToolOutput(findings=tuple(findings.values()), data=run, partial=run.partial)


def parse_stream(fp: IO[bytes]) -> ToolOutput:
    return parse(fp.read())


def read(data: bytes) -> SslyzeRun:
    """The `SslyzeRun` of any supported output, without findings."""
    text = data.removeprefix(b"\xef\xbb\xbf").strip()
    if not text:
        raise ParseError(
            _TOOL, "empty output: sslyze writes an empty file when no target string was valid"
        )
    if text.startswith(b"<"):
        return xml_report.read(text)
    if not text.startswith(b"{"):
        raise ParseError(_TOOL, f"neither sslyze JSON (an object) nor sslyze XML: {found(text)}")
    text = utf8(text)
    try:
        top = _TOP.decode(text)
    except msgspec.DecodeError as exc:
        raise ParseError(_TOOL, f"not valid JSON (cut short?): {exc}") from exc
    if "server_scan_results" not in top:
        if "accepted_targets" in top:
            return early_json.read(text)
        raise ParseError(_TOOL, "JSON without server_scan_results is not sslyze output")
    try:
        if any(key in top for key in _LEGACY_KEYS):
            return _legacy_run(schema.LEGACY_OUTPUT.decode(text))
        return _run(schema.OUTPUT.decode(text))
    except msgspec.ValidationError as exc:
        raise ParseError(_TOOL, f"unexpected sslyze JSON: {exc}") from exc


def _run(output: schema.Output) -> SslyzeRun:
    servers = tuple(_server(result) for result in output.server_scan_results)
    not_scanned = tuple(
        NotScanned(server=bad.server_string, reason=bad.error_message)
        for bad in output.invalid_server_strings
    )
    return SslyzeRun(
        version=output.sslyze_version,
        output_format="json",
        started=parse_time(output.date_scans_started),
        completed=parse_time(output.date_scans_completed),
        servers=servers,
        not_scanned=not_scanned,
        partial=_partial(servers, not_scanned),
    )


def _legacy_run(output: schema.LegacyOutput) -> SslyzeRun:
    servers = tuple(_legacy_server(result) for result in output.server_scan_results)
    not_scanned = tuple(
        NotScanned(server=error.server_string, reason=error.error_message)
        for error in output.server_connectivity_errors
    )
    return SslyzeRun(
        version=output.sslyze_version,
        output_format="json-legacy",
        servers=servers,
        not_scanned=not_scanned,
        partial=_partial(servers, not_scanned),
    )


def _partial(servers: tuple[Server, ...], not_scanned: tuple[NotScanned, ...]) -> bool:
    return bool(not_scanned) or any(not s.connected or s.errors for s in servers)


def _server(result: schema.ServerScanResult) -> Server:
    location = result.server_location
    server_name = _server_name(result.network_configuration)
    scanned = result.scan_result
    if scanned is None or result.connectivity_status == "ERROR":
        return Server(
            hostname=location.hostname,
            port=location.port,
            ip_address=location.ip_address or "",
            server_name=server_name,
            connected=False,
            error=_last_line(result.connectivity_error_trace) or result.scan_status,
        )
    errors: list[CommandError] = []

    def completed(command: str, attempt: schema.Attempt[T] | None) -> T | None:
        # An attempt written as null (seen in the wild) counts as not scheduled.
        if attempt is None or attempt.status == "NOT_SCHEDULED":
            return None
        if attempt.status == "COMPLETED" and attempt.result is not None:
            return attempt.result
        reason = attempt.error_reason or _last_line(attempt.error_trace) or attempt.status
        errors.append(CommandError(command=command, reason=reason))
        return None

    return _assemble(
        location,
        server_name,
        result.connectivity_result,
        lambda command: completed(command, getattr(scanned, command)),
        errors,
    )


def _legacy_server(result: schema.LegacyServerScanResult) -> Server:
    info = result.server_info
    errors = [
        CommandError(command=command, reason=error.reason or _last_line(error.exception_trace))
        for command, error in result.scan_commands_errors.items()
    ]
    results = result.scan_commands_results
    return _assemble(
        info.server_location,
        _server_name(info.network_configuration),
        info.tls_probing_result,
        lambda command: getattr(results, command),
        errors,
    )


def _assemble(
    location: schema.Location,
    server_name: str,
    connectivity: schema.Connectivity | None,
    result_of: Callable[[str], object],
    errors: list[CommandError],
) -> Server:
    """A connected server from its scan commands' results, whichever generation wrote them."""
    certificate_info = _typed(result_of("certificate_info"), schema.CertificateInfo)
    name = server_name
    deployments: tuple[CertificateDeployment, ...] = ()
    if certificate_info is not None:
        name = certificate_info.hostname_used_for_server_name_indication or server_name
        deployments = tuple(
            _deployment(deployment, name) for deployment in certificate_info.certificate_deployments
        )
    protocols = tuple(
        _protocol(version, suites)
        for command, version in PROTOCOLS
        if (suites := _typed(result_of(command), schema.CipherSuites)) is not None
    )
    heartbleed = _typed(result_of("heartbleed"), schema.Heartbleed)
    ccs = _typed(result_of("openssl_ccs_injection"), schema.CcsInjection)
    robot = _typed(result_of("robot"), schema.Robot)
    compression = _typed(result_of("tls_compression"), schema.Compression)
    renegotiation = _typed(result_of("session_renegotiation"), schema.Renegotiation)
    fallback = _typed(result_of("tls_fallback_scsv"), schema.FallbackScsv)
    early_data = _typed(result_of("tls_1_3_early_data"), schema.EarlyData)
    client_renegotiation = None
    if renegotiation is not None:
        client_renegotiation = renegotiation.is_vulnerable_to_client_renegotiation_dos
        if client_renegotiation is None:
            client_renegotiation = renegotiation.accepts_client_renegotiation
    return Server(
        hostname=location.hostname,
        port=location.port,
        ip_address=location.ip_address or "",
        server_name=name,
        highest_tls_version=_version_name(
            (connectivity.highest_tls_version_supported if connectivity else None) or ""
        ),
        certificate_deployments=deployments,
        protocols=protocols,
        vulnerabilities=Vulnerabilities(
            heartbleed=heartbleed.is_vulnerable_to_heartbleed if heartbleed else None,
            ccs_injection=ccs.is_vulnerable_to_ccs_injection if ccs else None,
            robot=robot.robot_result if robot else "",
            compression=compression.supports_compression if compression else None,
            secure_renegotiation=(
                renegotiation.supports_secure_renegotiation if renegotiation else None
            ),
            client_renegotiation_dos=client_renegotiation,
            fallback_scsv=fallback.supports_fallback_scsv if fallback else None,
            early_data=early_data.supports_early_data if early_data else None,
        ),
        errors=tuple(errors),
    )


def _typed(value: object, kind: type[T]) -> T | None:
    # The schema types each command's field; this only narrows `getattr`'s `object` for mypy.
    if value is None or not isinstance(value, kind):
        return None
    return value


def _deployment(deployment: schema.Deployment, name: str) -> CertificateDeployment:
    chain = tuple(_certificate(cert) for cert in deployment.received_certificate_chain)
    matches = deployment.leaf_certificate_subject_matches_hostname
    if matches is None and chain and name:
        matches = hostname_matches(name, chain[0].dns_names, chain[0].ip_addresses)
    ocsp = deployment.ocsp_response
    return CertificateDeployment(
        received_chain=chain,
        trust=tuple(_trust(result) for result in deployment.path_validation_results),
        hostname_matches=matches,
        chain_order_valid=deployment.received_chain_has_valid_order,
        leaf_is_ev=deployment.leaf_certificate_is_ev,
        must_staple=deployment.leaf_certificate_has_must_staple_extension,
        verified_chain_has_sha1_signature=deployment.verified_chain_has_sha1_signature,
        ocsp_status=(ocsp.certificate_status or "") if ocsp else "",
    )


def _certificate(cert: schema.Certificate) -> Certificate:
    names = cert.subject_alternative_name or cert.alternative_names_v3
    key = cert.public_key or cert.public_key_v3
    serial = cert.serial_number if cert.serial_number is not None else cert.serial_number_v3
    signature_hash = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else ""
    return Certificate(
        subject=cert.subject.rfc4514_string if cert.subject else "",
        issuer=cert.issuer.rfc4514_string if cert.issuer else "",
        serial="" if serial is None else str(serial),
        not_before=parse_time(cert.not_valid_before or cert.not_before_v3),
        not_after=parse_time(cert.not_valid_after or cert.not_after_v3),
        dns_names=(names.dns_names or names.dns) if names else (),
        ip_addresses=names.ip_addresses if names else (),
        key_algorithm=key_algorithm(key.algorithm) if key else "",
        key_size=(key.key_size if key.key_size is not None else integer(key.size)) if key else None,
        curve=(key.ec_curve_name or key.curve or "") if key else "",
        signature_algorithm=(
            cert.signature_algorithm_oid.name
            if cert.signature_algorithm_oid
            else cert.signature_algorithm_v3 or ""
        ),
        signature_hash=signature_hash or cert.signature_algorithm_v3 or "",
        sha256=der_sha256(cert.as_pem) or sha256_from_base64(cert.fingerprint_sha256),
    )


def _trust(result: schema.PathValidation) -> TrustCheck:
    trusted = result.was_validation_successful
    if trusted is None:
        trusted = result.verified_certificate_chain is not None
    return TrustCheck(
        store=result.trust_store.name,
        store_version=result.trust_store.version,
        trusted=trusted,
        error=result.validation_error or result.openssl_error_string or "",
    )


def _protocol(version: str, suites: schema.CipherSuites) -> ProtocolSupport:
    accepted = tuple(
        CipherSuite(
            name=suite.cipher_suite.name,
            openssl_name=suite.cipher_suite.openssl_name,
            key_size=suite.cipher_suite.key_size,
            anonymous=suite.cipher_suite.is_anonymous,
        )
        for suite in suites.accepted_cipher_suites
    )
    supported = suites.is_tls_version_supported
    return ProtocolSupport(
        version=version,
        supported=bool(accepted) if supported is None else supported,
        accepted=accepted,
    )


def _server_name(config: schema.NetworkConfiguration | None) -> str:
    return (config.tls_server_name_indication or "") if config else ""


def _version_name(enum_name: str) -> str:
    """sslyze's `TLS_1_2` as "TLS 1.2"."""
    protocol, _, rest = enum_name.partition("_")
    return f"{protocol} {rest.replace('_', '.')}" if rest else enum_name


def _last_line(trace: str | None) -> str:
    """The exception line of a Python traceback: what went wrong, without local paths."""
    lines = [line.strip() for line in (trace or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
