"""sslyze's JSON output as msgspec reads it: only the fields the parser uses, for both JSON
generations (3.x/4.x `scan_commands_results`, 5.x/6.x `scan_result`).

Not sslyze's own pydantic models (`SslyzeOutputAsJson`): they read only the installed
version's output, and would put sslyze and pydantic under every `jetscan parse`. Unknown
fields are ignored, so additions in later versions pass; a field of the wrong type fails
with msgspec's message naming its path. Where two versions spell one fact differently
(`not_valid_after` / `notAfter`), both spellings are fields and the parser takes either.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class _In(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Name(_In, frozen=True):
    rfc4514_string: str = ""


class AlternativeNames(_In, frozen=True):
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    # 3.x
    dns: tuple[str, ...] = msgspec.field(default=(), name="DNS")


class Named(_In, frozen=True):
    name: str = ""


class PublicKey(_In, frozen=True):
    algorithm: str = ""
    key_size: int | None = None
    ec_curve_name: str | None = None
    # 3.x; 3.0 wrote it with str() ("2048"), as 1.x/2.x did.
    size: int | str | None = None
    curve: str | None = None


class Certificate(_In, frozen=True):
    as_pem: str = ""
    fingerprint_sha256: str | None = None
    serial_number: int | str | None = None
    not_valid_before: str | None = None
    not_valid_after: str | None = None
    subject: Name | None = None
    issuer: Name | None = None
    subject_alternative_name: AlternativeNames | None = None
    public_key: PublicKey | None = None
    signature_hash_algorithm: Named | None = None
    signature_algorithm_oid: Named | None = None
    # 3.x
    serial_number_v3: int | str | None = msgspec.field(default=None, name="serialNumber")
    not_before_v3: str | None = msgspec.field(default=None, name="notBefore")
    not_after_v3: str | None = msgspec.field(default=None, name="notAfter")
    alternative_names_v3: AlternativeNames | None = msgspec.field(
        default=None, name="subjectAlternativeName"
    )
    public_key_v3: PublicKey | None = msgspec.field(default=None, name="publicKey")
    signature_algorithm_v3: str | None = msgspec.field(default=None, name="signatureAlgorithm")


class TrustStore(_In, frozen=True):
    name: str = ""
    version: str = ""


class PathValidation(_In, frozen=True):
    trust_store: TrustStore = msgspec.field(default_factory=TrustStore)
    was_validation_successful: bool | None = None
    validation_error: str | None = None
    # 3.x-5.x
    openssl_error_string: str | None = None
    # 3.x says success only by a verified chain being there.
    verified_certificate_chain: list[Any] | None = None


class OcspResponse(_In, frozen=True):
    certificate_status: str | None = None


class Deployment(_In, frozen=True):
    received_certificate_chain: tuple[Certificate, ...] = ()
    path_validation_results: tuple[PathValidation, ...] = ()
    leaf_certificate_subject_matches_hostname: bool | None = None
    received_chain_has_valid_order: bool | None = None
    leaf_certificate_is_ev: bool | None = None
    leaf_certificate_has_must_staple_extension: bool | None = None
    verified_chain_has_sha1_signature: bool | None = None
    ocsp_response: OcspResponse | None = None


class CertificateInfo(_In, frozen=True):
    hostname_used_for_server_name_indication: str = ""
    certificate_deployments: tuple[Deployment, ...] = ()


class Suite(_In, frozen=True):
    name: str
    openssl_name: str = ""
    key_size: int | None = None
    is_anonymous: bool = False


class AcceptedSuite(_In, frozen=True):
    cipher_suite: Suite


class CipherSuites(_In, frozen=True):
    tls_version_used: str = ""
    # 5.x on; before, support is "some suite was accepted".
    is_tls_version_supported: bool | None = None
    accepted_cipher_suites: tuple[AcceptedSuite, ...] = ()


class Heartbleed(_In, frozen=True):
    is_vulnerable_to_heartbleed: bool | None = None


class CcsInjection(_In, frozen=True):
    is_vulnerable_to_ccs_injection: bool | None = None


class Robot(_In, frozen=True):
    robot_result: str = ""


class Compression(_In, frozen=True):
    supports_compression: bool | None = None


class Renegotiation(_In, frozen=True):
    supports_secure_renegotiation: bool | None = None
    is_vulnerable_to_client_renegotiation_dos: bool | None = None
    # 3.x
    accepts_client_renegotiation: bool | None = None


class FallbackScsv(_In, frozen=True):
    supports_fallback_scsv: bool | None = None


class EarlyData(_In, frozen=True):
    supports_early_data: bool | None = None


class Location(_In, frozen=True):
    hostname: str
    port: int
    ip_address: str | None = None


class NetworkConfiguration(_In, frozen=True):
    tls_server_name_indication: str | None = None


class Connectivity(_In, frozen=True):
    highest_tls_version_supported: str | None = None


# --- 5.x and later --------------------------------------------------------------------------


class Attempt(_In, Generic[T], frozen=True):
    """A scan command's attempt: COMPLETED with a result, ERROR, or NOT_SCHEDULED."""

    status: str = ""
    error_reason: str | None = None
    error_trace: str | None = None
    result: T | None = None


class ScanResult(_In, frozen=True):
    certificate_info: Attempt[CertificateInfo] | None = None
    ssl_2_0_cipher_suites: Attempt[CipherSuites] | None = None
    ssl_3_0_cipher_suites: Attempt[CipherSuites] | None = None
    tls_1_0_cipher_suites: Attempt[CipherSuites] | None = None
    tls_1_1_cipher_suites: Attempt[CipherSuites] | None = None
    tls_1_2_cipher_suites: Attempt[CipherSuites] | None = None
    tls_1_3_cipher_suites: Attempt[CipherSuites] | None = None
    heartbleed: Attempt[Heartbleed] | None = None
    openssl_ccs_injection: Attempt[CcsInjection] | None = None
    robot: Attempt[Robot] | None = None
    tls_compression: Attempt[Compression] | None = None
    session_renegotiation: Attempt[Renegotiation] | None = None
    tls_fallback_scsv: Attempt[FallbackScsv] | None = None
    tls_1_3_early_data: Attempt[EarlyData] | None = None


class ServerScanResult(_In, frozen=True):
    server_location: Location
    network_configuration: NetworkConfiguration | None = None
    connectivity_status: str = ""
    connectivity_error_trace: str | None = None
    connectivity_result: Connectivity | None = None
    scan_status: str = ""
    scan_result: ScanResult | None = None


class InvalidServerString(_In, frozen=True):
    server_string: str = ""
    error_message: str = ""


class Output(_In, frozen=True):
    server_scan_results: tuple[ServerScanResult, ...]
    invalid_server_strings: tuple[InvalidServerString, ...] = ()
    date_scans_started: str | None = None
    date_scans_completed: str | None = None
    sslyze_version: str = ""


# --- 3.x and 4.x ----------------------------------------------------------------------------


class LegacyResults(_In, frozen=True):
    certificate_info: CertificateInfo | None = None
    ssl_2_0_cipher_suites: CipherSuites | None = None
    ssl_3_0_cipher_suites: CipherSuites | None = None
    tls_1_0_cipher_suites: CipherSuites | None = None
    tls_1_1_cipher_suites: CipherSuites | None = None
    tls_1_2_cipher_suites: CipherSuites | None = None
    tls_1_3_cipher_suites: CipherSuites | None = None
    heartbleed: Heartbleed | None = None
    openssl_ccs_injection: CcsInjection | None = None
    robot: Robot | None = None
    tls_compression: Compression | None = None
    session_renegotiation: Renegotiation | None = None
    tls_fallback_scsv: FallbackScsv | None = None
    tls_1_3_early_data: EarlyData | None = None


class LegacyError(_In, frozen=True):
    reason: str = ""
    exception_trace: str = ""


class ServerInfo(_In, frozen=True):
    server_location: Location
    network_configuration: NetworkConfiguration | None = None
    tls_probing_result: Connectivity | None = None


class LegacyServerScanResult(_In, frozen=True):
    server_info: ServerInfo
    scan_commands_results: LegacyResults = msgspec.field(default_factory=LegacyResults)
    scan_commands_errors: dict[str, LegacyError] = msgspec.field(default_factory=dict)


class ConnectivityError(_In, frozen=True):
    server_string: str = ""
    error_message: str = ""


class LegacyOutput(_In, frozen=True):
    server_scan_results: tuple[LegacyServerScanResult, ...]
    server_connectivity_errors: tuple[ConnectivityError, ...] = ()
    sslyze_version: str = ""


OUTPUT = msgspec.json.Decoder(Output)
LEGACY_OUTPUT = msgspec.json.Decoder(LegacyOutput)
