from __future__ import annotations

import pytest

from scanners.dns.names import OUTSIDE_SCOPE, addresses_outside, judge
from scanners.scope import Scope

SCOPE = Scope.parse("example.com, 10.0.0.0/8, 2001:db8::/32")
NOT_UNDER = "not example.com or one of its subdomains"


@pytest.mark.parametrize(
    ("text", "domain", "scope", "expected"),
    [
        ("www.example.com", "example.com", SCOPE, ("www.example.com", "")),
        ("WWW.Example.COM.", "example.com", SCOPE, ("www.example.com", "")),
        ("example.com", "example.com", SCOPE, ("example.com", "")),
        ("a.b.c.example.com", "example.com", SCOPE, ("a.b.c.example.com", "")),
        ("räksmörgås.example.com", "example.com", SCOPE, ("xn--rksmrgs-5wao1o.example.com", "")),
        # Service labels are DNS names, though not hostnames.
        ("_DMARC.example.com.", "example.com", SCOPE, ("_dmarc.example.com", "")),
        ("_sip._tcp.example.com", "example.com", SCOPE, ("_sip._tcp.example.com", "")),
        ("notexample.com", "example.com", SCOPE, ("notexample.com", NOT_UNDER)),
        ("example.com.evil.net", "example.com", SCOPE, ("example.com.evil.net", NOT_UNDER)),
        ("mail.example.org", "example.com", SCOPE, ("mail.example.org", NOT_UNDER)),
        # Under the scanned domain but not in the deployment's scope.
        (
            "a.example.com",
            "example.com",
            Scope.parse("b.example.com"),
            ("a.example.com", OUTSIDE_SCOPE),
        ),
        ("a.example.com", "example.com", Scope(), ("a.example.com", OUTSIDE_SCOPE)),
        # A bare file: no domain, no scope.
        ("anything.example.org", "", None, ("anything.example.org", "")),
    ],
)
def test_judge(text: str, domain: str, scope: Scope | None, expected: tuple[str, str]) -> None:
    assert judge(text, domain, scope) == expected


@pytest.mark.parametrize(
    "text",
    ["*.example.com", "a..example.com", "-a.example.com", "_-.example.com", "1.2.3.4", "a b", ""],
)
def test_invalid_hostnames_are_out_of_scope_as_given(text: str) -> None:
    name, reason = judge(text, "example.com", SCOPE)
    assert name == text
    assert reason.startswith("not a valid hostname: ")


def test_addresses_outside_the_scope_networks() -> None:
    addresses = ("10.1.2.3", "192.0.2.1", "2001:db8::5", "::1", "not-an-ip")
    assert addresses_outside(addresses, SCOPE) == ("192.0.2.1", "::1", "not-an-ip")
    # A scope without networks still never reaches private or loopback addresses by a name.
    assert addresses_outside(addresses, Scope.parse("example.com")) == ("10.1.2.3", "::1")
    assert addresses_outside(addresses, None) == ()
