from __future__ import annotations

import ipaddress

import pytest

from scanners.scope import Scope, in_scope
from scanners.targets import TargetKind, parse_target

SCOPE = Scope.parse("localhost,example.com, Bücher.example\n127.0.0.0/8 ::1/128,10.1.2.3")


def test_parse_reads_domains_and_networks() -> None:
    assert SCOPE.domains == ("localhost", "example.com", "xn--bcher-kva.example")
    assert SCOPE.networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.1.2.3/32"),
    )


def test_parse_of_nothing_allows_nothing() -> None:
    empty = Scope.parse(" , ")
    assert empty == Scope()
    assert not in_scope(parse_target("localhost", allowed_kinds={TargetKind.HOST}), empty)


def test_parse_drops_duplicates() -> None:
    assert Scope.parse("a.com,A.com.,10.0.0.0/8 10.0.0.0/8") == Scope(
        domains=("a.com",), networks=(ipaddress.ip_network("10.0.0.0/8"),)
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*.example.com", "already covers its subdomains"),
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "scope entry '10.0.0.0/33'"),
        ("example.com/8", "does not appear to be an IPv4 or IPv6 network"),
        ("ex_ample.com", "not a valid hostname label"),
        ("a;b", "not a valid hostname label"),
        ("127.1", "looks like an IP address"),
    ],
)
def test_parse_names_the_bad_entry(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="scope entry") as raised:
        Scope.parse(f"example.com, {text}")
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("example.com", True),
        ("EXAMPLE.com.", True),
        ("www.example.com", True),
        ("a.b.c.example.com", True),
        ("notexample.com", False),
        ("example.com.evil.net", False),
        ("example.co", False),
        ("com", False),
        ("localhost", True),
        ("localhost.localdomain", False),
        ("bücher.example", True),
        ("shop.xn--bcher-kva.example", True),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("128.0.0.1", False),
        ("::1", True),
        ("::2", False),
        ("::ffff:127.0.0.1", True),
        ("10.1.2.3", True),
        ("10.1.2.4", False),
        ("127.0.0.0/24", True),
        ("127.1.2.0/24", True),
        ("10.1.2.3/32", True),
        ("10.1.2.0/24", False),
        ("2001:db8::/120", False),
        ("http://localhost:8080/", True),
        ("https://api.example.com/v1", True),
        ("https://example.org/", False),
        ("http://127.0.0.1:3000/", True),
        ("http://[::1]:8080/", True),
        ("http://[::2]/", False),
        ("localhost:8443", True),
        ("api.example.com:443", True),
        ("example.org:443", False),
        ("127.0.0.1:443", True),
        ("10.1.2.4:443", False),
        ("[::1]:443", True),
        ("[::2]:443", False),
        ("[::ffff:127.0.0.1]:443", True),
    ],
)
def test_in_scope(target: str, expected: bool) -> None:
    parsed = parse_target(target, allowed_kinds=frozenset(TargetKind))
    assert in_scope(parsed, SCOPE) is expected


def test_a_cidr_must_lie_entirely_inside_one_allowed_network() -> None:
    scope = Scope.parse("10.0.0.0/25, 10.0.0.128/25")
    straddling = parse_target("10.0.0.0/24", allowed_kinds={TargetKind.CIDR})
    inside = parse_target("10.0.0.128/26", allowed_kinds={TargetKind.CIDR})
    assert not in_scope(straddling, scope)
    assert in_scope(inside, scope)


def test_ipv4_networks_never_admit_ipv6_targets() -> None:
    scope = Scope.parse("0.0.0.0/0")
    assert not in_scope(parse_target("::1", allowed_kinds={TargetKind.IP}), scope)
    assert not in_scope(parse_target("::/120", allowed_kinds={TargetKind.CIDR}), scope)
    assert in_scope(parse_target("192.0.2.0/24", allowed_kinds={TargetKind.CIDR}), scope)
