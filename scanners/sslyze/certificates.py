"""Certificate facts every sslyze output generation spells differently, read one way."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, datetime

_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(?P<body>.*?)-----END CERTIFICATE-----", re.S)
# cryptography's class names, with and without the leading underscore of its old backend,
# and 1.x XML's plain names.
_KEY_ALGORITHMS = {"RSA": "RSA", "EllipticCurve": "EC", "EC": "EC", "DSA": "DSA"}


def der_sha256(pem: str) -> str:
    """The hex SHA-256 of a PEM certificate's DER bytes, or "" when there are none.

    Computed rather than taken from sslyze: 3.x and 1.x outputs carry no SHA-256, and one
    rule for every generation keeps a certificate's identity the same across sslyze upgrades.
    """
    match = _PEM_BODY.search(pem)
    if match is None:
        return ""
    try:
        der = base64.b64decode("".join(match.group("body").split()), validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        return ""
    return hashlib.sha256(der).hexdigest() if der else ""


def sha256_from_base64(text: str | None) -> str:
    """sslyze's base64 `fingerprint_sha256` as hex, for a chain whose PEM was stripped."""
    if not text:
        return ""
    try:
        return base64.b64decode(text, validate=True).hex()
    except ValueError:  # binascii.Error, or a character that is not ASCII
        return ""


def parse_time(text: str | None) -> datetime | None:
    """A certificate or scan time as aware UTC: "2015-04-12T23:59:59Z", "2023-01-19T04:39:56"
    (5.x, UTC without saying so), "2019-09-10 08:15:00" (1.x XML). None if absent or unreadable:
    such times are reported, never trusted for a verdict.
    """
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def integer(value: int | str | None) -> int | None:
    """A number sslyze 1.x-3.0 wrote with `str()` ("2048") or a later one wrote as a number.

    The text is the whole decimal number, so reading it loses nothing; anything else is None.
    """
    if isinstance(value, int):
        return value
    text = (value or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def key_algorithm(name: str) -> str:
    """ "RSA", "EC", "DSA", "Ed25519"... from `RSAPublicKey`, `_EllipticCurvePublicKey`, `RSA`."""
    bare = name.lstrip("_").removesuffix("PublicKey")
    return _KEY_ALGORITHMS.get(bare, bare)


def hostname_matches(name: str, dns_names: Iterable[str], ip_addresses: Iterable[str]) -> bool:
    """Whether a certificate with these SANs is valid for `name` (RFC 6125, as browsers do).

    An address matches only an IP SAN; a name matches a DNS SAN exactly or through a wildcard
    that is the whole left-most label (`*.example.com` covers `a.example.com`, neither
    `example.com` nor `a.b.example.com`). The subject CN is not consulted, as modern clients
    and sslyze 6's own validation do not.
    """
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        return any(_same_address(address, san) for san in ip_addresses)
    wanted = name.lower().rstrip(".")
    return any(_dns_match(wanted, san.lower().rstrip(".")) for san in dns_names)


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, san: str) -> bool:
    try:
        return ipaddress.ip_address(san) == address
    except ValueError:
        return False


def _dns_match(wanted: str, pattern: str) -> bool:
    if not pattern.startswith("*."):
        return wanted == pattern
    first, _, rest = wanted.partition(".")
    return bool(first) and rest == pattern[2:] and "." in rest
