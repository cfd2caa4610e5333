from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from scanners.sslyze.certificates import (
    der_sha256,
    hostname_matches,
    key_algorithm,
    parse_time,
    sha256_from_base64,
)


@pytest.mark.parametrize(
    ("name", "dns", "ips", "expected"),
    [
        ("example.com", ("example.com",), (), True),
        ("Example.COM.", ("example.com",), (), True),
        ("example.com", ("EXAMPLE.com",), (), True),
        ("www.example.com", ("*.example.com",), (), True),
        ("example.com", ("*.example.com",), (), False),
        ("a.b.example.com", ("*.example.com",), (), False),
        ("example.com", ("*.com",), (), False),
        ("wrong.host.badssl.com", ("*.badssl.com", "badssl.com"), (), False),
        ("www.example.com", ("w*.example.com",), (), False),
        ("example.org", ("example.com", "example.net"), (), False),
        ("example.com", (), ("93.184.216.34",), False),
        ("127.0.0.1", ("localhost",), ("127.0.0.1",), True),
        ("127.0.0.1", ("127.0.0.1",), (), False),
        ("::1", (), ("0:0:0:0:0:0:0:1",), True),
        ("::1", (), ("not an address",), False),
        ("localhost", (), ("127.0.0.1",), False),
    ],
)  # fmt: skip
def test_hostname_matching_follows_rfc_6125(
    name: str, dns: tuple[str, ...], ips: tuple[str, ...], expected: bool
) -> None:
    assert hostname_matches(name, dns, ips) is expected


def test_der_sha256_hashes_the_der_bytes_of_the_first_certificate() -> None:
    der = b"\x30\x03\x02\x01\x01"
    body = base64.b64encode(der).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    assert der_sha256(pem) == hashlib.sha256(der).hexdigest()
    assert der_sha256("junk before\n" + pem + pem) == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",  # anonymised in the corpus
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        "no certificate at all",
    ],
)
def test_der_sha256_is_empty_without_usable_der(pem: str) -> None:
    assert der_sha256(pem) == ""


def test_sslyze_base64_fingerprints_read_as_hex() -> None:
    assert sha256_from_base64(base64.b64encode(b"\x01\xff").decode()) == "01ff"
    assert sha256_from_base64("%%%") == ""
    assert sha256_from_base64(None) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-04-12T23:59:59Z", datetime(2015, 4, 12, 23, 59, 59, tzinfo=UTC)),
        ("2023-01-19T04:39:56", datetime(2023, 1, 19, 4, 39, 56, tzinfo=UTC)),
        ("2019-09-10 08:15:00", datetime(2019, 9, 10, 8, 15, tzinfo=UTC)),
        ("2025-11-05T14:20:48.406772+02:00", datetime(2025, 11, 5, 12, 20, 48, 406772, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("last tuesday", None),
    ],
)  # fmt: skip
def test_times_are_aware_utc_or_none(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("RSAPublicKey", "RSA"),
        ("_RSAPublicKey", "RSA"),
        ("RSA", "RSA"),
        ("ECPublicKey", "EC"),
        ("_EllipticCurvePublicKey", "EC"),
        ("EllipticCurve", "EC"),
        ("DSAPublicKey", "DSA"),
        ("Ed25519PublicKey", "Ed25519"),
    ],
)
def test_key_algorithms_have_one_name(name: str, expected: str) -> None:
    assert key_algorithm(name) == expected
