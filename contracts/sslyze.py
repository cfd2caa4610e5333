"""What sslyze saw, as published on `scan.results.sslyze` beside the normalised findings.

One shape for every sslyze output generation the parser reads (1.x XML, 3.x/4.x JSON, 5.x/6.x
JSON): a field an older version never wrote keeps its default, and `None` means "not checked"
wherever a check can be skipped, so a consumer can tell "not vulnerable" from "not tested".
Protocol versions are spelled "SSL 2.0" ... "TLS 1.3"; times are UTC.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


# Subclasses repeat `frozen=True` only because mypy's dataclass_transform does not inherit it.
class _Data(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    pass


class CipherSuite(_Data, frozen=True):
    """An accepted cipher suite, by its IANA name (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`),
    or by its OpenSSL name (`DES-CBC3-SHA`) where the output had no other (1.x/2.x JSON)."""

    name: str
    openssl_name: str = ""
    key_size: int | None = None
    anonymous: bool = False


class ProtocolSupport(_Data, frozen=True):
    """One protocol version's cipher-suite scan: does the server speak it, and with what."""

    version: str
    supported: bool = False
    accepted: tuple[CipherSuite, ...] = ()


class TrustCheck(_Data, frozen=True):
    """The chain's validation against one of the trust stores bundled with sslyze."""

    store: str
    store_version: str = ""
    trusted: bool = False
    error: str = ""


class Certificate(_Data, frozen=True):
    """One certificate of a chain. `sha256` is the hex SHA-256 of its DER encoding, empty
    when the output carried no usable PEM; `serial` is decimal text (serials exceed 64 bits).
    `signature_algorithm` is as sslyze names it: an OID name (`sha256WithRSAEncryption`) from
    5.x on, the hash alone before; `signature_hash` is always the hash (`sha256`).
    """

    subject: str = ""
    issuer: str = ""
    serial: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    key_algorithm: str = ""
    key_size: int | None = None
    curve: str = ""
    signature_algorithm: str = ""
    signature_hash: str = ""
    sha256: str = ""


class CertificateDeployment(_Data, frozen=True):
    """A certificate chain the server sends (one per key type: RSA, ECDSA...), leaf first.

    `hostname_matches` is sslyze's verdict where it gives one (up to 5.x); for 6.x, which
    folds the name check into path validation, the parser matches the leaf's SANs itself.
    `ocsp_status` is the stapled OCSP response's certificate status (GOOD, REVOKED, UNKNOWN),
    empty when none was stapled.
    """

    received_chain: tuple[Certificate, ...] = ()
    trust: tuple[TrustCheck, ...] = ()
    hostname_matches: bool | None = None
    chain_order_valid: bool | None = None
    leaf_is_ev: bool | None = None
    must_staple: bool | None = None
    verified_chain_has_sha1_signature: bool | None = None
    ocsp_status: str = ""


class Vulnerabilities(_Data, frozen=True):
    """The vulnerability and hardening checks; `None` where the check did not run.

    `robot` is sslyze's verdict name (`VULNERABLE_STRONG_ORACLE`, `NOT_VULNERABLE_NO_ORACLE`,
    ...). `client_renegotiation_dos` is whether the server accepts client-initiated
    renegotiation (older sslyze) or can be driven into it repeatedly (5.x on).
    """

    heartbleed: bool | None = None
    ccs_injection: bool | None = None
    robot: str = ""
    compression: bool | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation_dos: bool | None = None
    fallback_scsv: bool | None = None
    early_data: bool | None = None


class CommandError(_Data, frozen=True):
    """A scan command that ran but failed, such as a timeout in the middle of a check."""

    command: str
    reason: str = ""


class Server(_Data, frozen=True):
    """One scanned server. `connected` is false when sslyze could not reach it or complete a
    TLS handshake (`error` says why); nothing else was then checked.
    """

    hostname: str
    port: int
    ip_address: str = ""
    server_name: str = ""
    connected: bool = True
    error: str = ""
    highest_tls_version: str = ""
    certificate_deployments: tuple[CertificateDeployment, ...] = ()
    protocols: tuple[ProtocolSupport, ...] = ()
    vulnerabilities: Vulnerabilities = msgspec.field(default_factory=Vulnerabilities)
    errors: tuple[CommandError, ...] = ()


class NotScanned(_Data, frozen=True):
    """A target sslyze refused or could not reach before any server result (older versions)."""

    server: str
    reason: str = ""


class SslyzeRun(_Data, frozen=True, tag="sslyze", tag_field="kind"):
    """One sslyze invocation. `kind` tags it inside the union of every tool's result data.

    `output_format` names the generation read: "json" (5.x and later), "json-legacy"
    (3.x/4.x), "json-early" or "xml" (1.x/2.x). `started`/`completed` exist only from 5.x
    on. `partial` is true when some target or scan command did not complete, so a missing
    finding there means "not checked", not "fixed".
    """

    version: str = ""
    output_format: str = ""
    started: datetime | None = None
    completed: datetime | None = None
    servers: tuple[Server, ...] = ()
    not_scanned: tuple[NotScanned, ...] = ()
    partial: bool = False
