"""sslyze 1.x/2.x XML (`--xml_out`, removed in 3.0) → `SslyzeRun`, read as 1.4.3 writes it.

One `<target host ip port>` per server under `<results>`; each plugin is a child element
(`certinfo`, `sslv2` ... `tlsv1_3`, `heartbleed`, `openssl_ccs`, `robot`, `compression`,
`reneg`, `fallback`), with an `exception` attribute when it failed. Booleans are "True" and
"False". What this format cannot say stays at its default: it has no scan time, no SHA-256
fingerprint (computed from `<asPEM>`), no IP SANs, no early-data check and no OCSP status.
Parsed with defusedxml; the documents are small (about 0.1 MB per target).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

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
from scanners.sslyze.certificates import der_sha256, key_algorithm, parse_time

_TOOL = "sslyze"
_PROTOCOLS = (
    ("sslv2", "SSL 2.0"),
    ("sslv3", "SSL 3.0"),
    ("tlsv1", "TLS 1.0"),
    ("tlsv1_1", "TLS 1.1"),
    ("tlsv1_2", "TLS 1.2"),
    ("tlsv1_3", "TLS 1.3"),
)
_EMPTY = Element("none")


def read(data: bytes) -> SslyzeRun:
    try:
        root = fromstring(data)
    except XMLParseError as exc:
        raise ParseError(_TOOL, f"not well-formed XML: {exc}") from exc
    except LookupError as exc:  # the XML declaration names an encoding Python lacks
        raise ParseError(_TOOL, f"XML in an {exc}") from exc
    except DefusedXmlException as exc:
        raise ParseError(_TOOL, f"refused a forbidden XML construct: {exc!r}") from exc
    version = root.get("SSLyzeVersion")
    if root.tag != "document" or version is None:
        raise ParseError(_TOOL, f"XML root is <{root.tag}>, not sslyze's <document SSLyzeVersion>")
    results = root.find("results")
    servers = tuple(_server(target) for target in (_EMPTY if results is None else results))
    invalid = root.find("invalidTargets")
    not_scanned = tuple(
        NotScanned(server=(elem.text or "").strip(), reason=elem.get("error", ""))
        for elem in (_EMPTY if invalid is None else invalid)
    )
    return SslyzeRun(
        version=version,
        output_format="xml",
        servers=servers,
        not_scanned=not_scanned,
        partial=bool(not_scanned) or any(server.errors for server in servers),
    )


def _server(target: Element) -> Server:
    if target.tag != "target":
        raise ParseError(_TOOL, f"<results> holds <{target.tag}>, not <target>")
    if not target.get("host"):
        raise ParseError(_TOOL, "<target> has no host: a server without a name has no findings")
    port_text = target.get("port", "")
    if not port_text.isdigit():
        raise ParseError(_TOOL, f"<target> port={port_text!r} is not a port number")
    errors = [
        CommandError(command=plugin.tag, reason=plugin.get("exception", ""))
        for plugin in target
        if plugin.get("exception") is not None
    ]
    certinfo = _child(target, "certinfo")
    received = _child(certinfo, "receivedCertificateChain")
    deployments: tuple[CertificateDeployment, ...] = ()
    if len(received):
        deployments = (_deployment(certinfo, received),)
    protocols = []
    for tag, version in _PROTOCOLS:
        plugin = target.find(tag)
        if plugin is None or plugin.get("exception") is not None:
            continue
        protocols.append(_protocol(version, plugin))
        if failed := len(_child(plugin, "errors")):
            errors.append(CommandError(command=tag, reason=f"{failed} cipher suites not tested"))
    reneg = _child(_child(target, "reneg"), "sessionRenegotiation")
    return Server(
        hostname=target.get("host", ""),
        port=int(port_text),
        ip_address=target.get("ip", ""),
        server_name=received.get("suppliedServerNameIndication", ""),
        certificate_deployments=deployments,
        protocols=tuple(protocols),
        vulnerabilities=Vulnerabilities(
            heartbleed=_flag(target, "heartbleed/openSslHeartbleed", "isVulnerable"),
            ccs_injection=_flag(target, "openssl_ccs/openSslCcsInjection", "isVulnerable"),
            robot=_child(_child(target, "robot"), "robotAttack").get("resultEnum", ""),
            compression=_flag(target, "compression/compressionMethod", "isSupported"),
            secure_renegotiation=_bool(reneg.get("isSecure")),
            client_renegotiation_dos=_bool(reneg.get("canBeClientInitiated")),
            fallback_scsv=_flag(target, "fallback/tlsFallbackScsv", "isSupported"),
        ),
        errors=tuple(errors),
    )


def _deployment(certinfo: Element, received: Element) -> CertificateDeployment:
    validation = _child(certinfo, "certificateValidation")
    verified = _child(validation, "verifiedCertificateChain")
    return CertificateDeployment(
        received_chain=tuple(_certificate(cert) for cert in received.iter("certificate")),
        trust=tuple(
            TrustCheck(
                store=check.get("usingTrustStore", ""),
                store_version=check.get("trustStoreVersion", ""),
                trusted=check.get("validationResult") == "ok",
                error=""
                if check.get("validationResult") == "ok"
                else check.get("validationResult", ""),
            )
            for check in validation.iter("pathValidation")
        ),
        hostname_matches=_bool(
            _child(validation, "hostnameValidation").get("certificateMatchesServerHostname")
        ),
        chain_order_valid=_bool(received.get("isChainOrderValid")),
        must_staple=_bool(received.get("hasMustStapleExtension")),
        verified_chain_has_sha1_signature=_bool(verified.get("hasSha1SignedCertificate")),
    )


def _certificate(cert: Element) -> Certificate:
    key = _child(cert, "publicKey")
    size = key.get("size", "")
    signature = _text(cert, "signatureAlgorithm")
    return Certificate(
        subject=_text(cert, "subject"),
        issuer=_text(cert, "issuer"),
        serial=_text(cert, "serialNumber"),
        not_before=parse_time(_text(cert, "notBefore")),
        not_after=parse_time(_text(cert, "notAfter")),
        dns_names=tuple(
            (name.text or "").strip()
            for name in _child(cert, "subjectAlternativeName")
            if name.tag == "DNS"
        ),
        key_algorithm=key_algorithm(key.get("algorithm", "")),
        key_size=int(size) if size.isdigit() else None,
        curve=key.get("curve", ""),
        signature_algorithm=signature,
        signature_hash=signature,
        sha256=der_sha256(_text(cert, "asPEM")),
    )


def _protocol(version: str, plugin: Element) -> ProtocolSupport:
    accepted = tuple(
        CipherSuite(
            name=suite.get("name", ""),
            key_size=int(size) if (size := suite.get("keySize", "")).isdigit() else None,
            anonymous=suite.get("anonymous") == "True",
        )
        for suite in _child(plugin, "acceptedCipherSuites")
        if suite.tag == "cipherSuite"
    )
    supported = _bool(plugin.get("isProtocolSupported"))
    return ProtocolSupport(
        version=version,
        supported=bool(accepted) if supported is None else supported,
        accepted=accepted,
    )


def _child(elem: Element, tag: str) -> Element:
    # A missing element reads as an empty one: its attributes take their defaults, which is
    # what a plugin that was not run means.
    found = elem.find(tag)
    return _EMPTY if found is None else found


def _text(elem: Element, tag: str) -> str:
    return (_child(elem, tag).text or "").strip()


def _flag(target: Element, path: str, attribute: str) -> bool | None:
    found = target.find(path)
    return None if found is None else _bool(found.get(attribute))


def _bool(text: str | None) -> bool | None:
    return {"True": True, "False": False}.get(text or "")
