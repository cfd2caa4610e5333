from __future__ import annotations

import pytest

from scanners.errors import TargetError
from scanners.targets import Target, TargetKind, normalize_hostname, parse_target

ALL = frozenset(TargetKind)
HOST, IP, CIDR, URL = TargetKind.HOST, TargetKind.IP, TargetKind.CIDR, TargetKind.URL
ENDPOINT = TargetKind.ENDPOINT


LONG_LABEL = "a" * 63 + ".com"
BUCHER = "xn--bcher-kva.example"
UK, AU = "a.b.example.co.uk", "shop.example.com.au"
EX = "example.com"
SVC, APP = "svc-1.ns.svc.cluster.local", "app.example.com"
V6 = "2001:db8::1"


@pytest.mark.parametrize(
    ("text", "kind", "value", "host", "domain", "port"),
    [
        ("example.com", HOST, "example.com", "example.com", "example.com", None),
        ("WWW.Example.COM.", HOST, "www.example.com", "www.example.com", "example.com", None),
        ("localhost", HOST, "localhost", "localhost", "localhost", None),
        (UK, HOST, UK, UK, "example.co.uk", None),
        (AU, HOST, AU, AU, "example.com.au", None),
        ("co.uk", HOST, "co.uk", "co.uk", "co.uk", None),
        ("Bücher.example", HOST, BUCHER, BUCHER, BUCHER, None),
        (BUCHER, HOST, BUCHER, BUCHER, BUCHER, None),
        (SVC, HOST, SVC, SVC, "cluster.local", None),
        (LONG_LABEL, HOST, LONG_LABEL, LONG_LABEL, LONG_LABEL, None),
        ("127.0.0.1", IP, "127.0.0.1", "127.0.0.1", "127.0.0.1/32", None),
        ("2001:DB8::1", IP, "2001:db8::1", "2001:db8::1", "2001:db8::1/128", None),
        ("::ffff:10.0.0.1", IP, "10.0.0.1", "10.0.0.1", "10.0.0.1/32", None),
        ("10.0.0.0/24", CIDR, "10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/24", None),
        ("10.0.0.7/24", CIDR, "10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/24", None),
        ("10.0.0.7/32", CIDR, "10.0.0.7/32", "10.0.0.7/32", "10.0.0.7/32", None),
        ("2001:db8::/120", CIDR, "2001:db8::/120", "2001:db8::/120", "2001:db8::/120", None),
        ("https://example.com", URL, "https://example.com/", "example.com", "example.com", None),
        ("HTTP://App.Example.com:8080/%20", URL, f"http://{APP}:8080/%20", APP, EX, 8080),
        ("http://[::1]:8080/", URL, "http://[::1]:8080/", "::1", "::1/128", 8080),
        ("http://[2001:DB8::1]/x", URL, f"http://[{V6}]/x", V6, f"{V6}/128", None),
        ("https://127.0.0.1:443/", URL, "https://127.0.0.1:443/", "127.0.0.1", "127.0.0.1/32", 443),
        ("https://bücher.example/", URL, f"https://{BUCHER}/", BUCHER, BUCHER, None),
        ("example.com:8443", ENDPOINT, "example.com:8443", EX, EX, 8443),
        ("App.Example.COM.:443", ENDPOINT, f"{APP}:443", APP, EX, 443),
        ("127.0.0.1:443", ENDPOINT, "127.0.0.1:443", "127.0.0.1", "127.0.0.1/32", 443),
        ("[2001:DB8::1]:8443", ENDPOINT, f"[{V6}]:8443", V6, f"{V6}/128", 8443),
        ("[::ffff:10.0.0.1]:443", ENDPOINT, "10.0.0.1:443", "10.0.0.1", "10.0.0.1/32", 443),
        ("localhost:65535", ENDPOINT, "localhost:65535", "localhost", "localhost", 65535),
    ],
)  # fmt: skip
def test_valid_targets_are_normalised(
    text: str, kind: TargetKind, value: str, host: str, domain: str, port: int | None
) -> None:
    expected = Target(kind=kind, value=value, host=host, domain=domain, port=port)
    assert parse_target(text, allowed_kinds=ALL) == expected


MALFORMED = [
    ("", "is empty"),
    (".", "is empty"),
    ("localhost;rm -rf /", "whitespace"),
    ("localhost;id", "metacharacter ';'"),
    ("$(id)", "metacharacter '$'"),
    ("`id`", "metacharacter '`'"),
    ("a|b.com", "metacharacter '|'"),
    ("a&b.com", "metacharacter '&'"),
    ("a>b.com", "metacharacter '>'"),
    ("a<b.com", "metacharacter '<'"),
    ("{a,b}.com", "metacharacter '{'"),
    ("a*.com", "metacharacter '*'"),
    ("a?.com", "metacharacter '?'"),
    ("a'b.com", "metacharacter"),
    ('a"b.com', "metacharacter"),
    ("a\\b.com", "metacharacter"),
    ("!x", "metacharacter '!'"),
    ("[::1]", "metacharacter '['"),
    ("http://example.com/#frag", "metacharacter '#'"),
    ("http://example.com/?q=1", "metacharacter '?'"),
    ("--script=x", "starts with '-'"),
    ("-iL/etc/passwd", "starts with '-'"),
    ("-a.com", "starts with '-'"),
    ("exam ple.com", "whitespace"),
    (" example.com", "whitespace"),
    ("example.com\t", "control"),
    ("example.com\n", "control"),
    ("example.com\nrm", "control"),
    ("exa\x00mple.com", "control"),
    ("exa\x7fmple.com", "control"),
    ("exa\u200bmple.com", "invisible"),
    ("exa\u202emple.com", "invisible"),
    ("example\u3000com", "whitespace"),
    ("a" * 300, "longer than 253"),
    ("a" * 64 + ".com", "longer than 63"),
    ("a." * 127 + "com", "longer than 253"),
    ("x" * 3000, "longer than 2048"),
    ("a..com", "empty label"),
    ("ex_ample.com", "not a valid hostname label"),
    ("a-.com", "not a valid hostname label"),
    ("a.-b.com", "not a valid hostname label"),
    ("a%b.com", "not a valid hostname label"),
    ("a,b.com", "not a valid hostname label"),
    ("a=b", "not a valid hostname label"),
    ("\u05d0a.com", "BIDI"),
    ("xn--zzzz.com", "not valid punycode"),
    ("127.1", "looks like an IP address"),
    ("0x7f000001", "looks like an IP address"),
    ("2130706433", "looks like an IP address"),
    ("256.1.1.1", "looks like an IP address"),
    ("010.0.0.1", "looks like an IP address"),
    ("fe80::1%eth0", "zone"),
    ("example.com:0", "out of range"),
    ("example.com:", "not a number"),
    ("example.com:https", "not a number"),
    ("1.2.3.4:80:80", "must be in brackets"),
    (":443", "no host"),
    ("ex_ample.com:443", "not a valid hostname label"),
    ("127.1:443", "looks like an IP address"),
    ("[::1]:", "not a number"),
    ("[::1]:70000", "out of range"),
    ("[1.2.3.4]:443", "not a valid IPv6"),
    ("[::1]x:443", "metacharacter '['"),
    ("[fe80::1%eth0]:443", "zone"),
    ("10.0.0.0/16", "too large: at most a /24"),
    ("0.0.0.0/0", "too large"),
    ("2001:db8::/64", "too large: at most a /120"),
    ("10.0.0.0/33", "not a valid CIDR"),
    ("10.0.0.0/255.255.255.0", "prefix is a number"),
    ("10.0.0.0/", "prefix is a number"),
    ("example.com/24", "not a CIDR network"),
    ("ftp://example.com/", "only http:// and https://"),
    ("file:///etc/passwd", "only http:// and https://"),
    ("gopher://127.0.0.1:6379/", "only http:// and https://"),
    ("http://user:pass@example.com/", "credentials"),
    ("http://user@example.com/", "credentials"),
    ("http://example.com:0/", "out of range"),
    ("http://example.com:70000/", "out of range"),
    ("http://example.com:/", "not a number"),
    ("http://example.com:80a/", "not a number"),
    ("http:///path", "no host"),
    ("http://::1/", "must be in brackets"),
    ("http://[1.2.3.4]/", "not a valid IPv6"),
    ("http://[zz::]/", "not a valid IPv6"),
    ("http://[::1]x/", "not a valid URL"),
    ("http://[::1]/[x]", "metacharacter '['"),
    ("http://example.com/é", "ASCII"),
    ("http://example.com/%zz", "%XX"),
    ("http://ex_ample.com/", "not a valid hostname label"),
]


@pytest.mark.parametrize(("text", "reason"), MALFORMED)
def test_malformed_targets_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(TargetError) as raised:
        parse_target(text, allowed_kinds=ALL)
    assert raised.value.field == "target"
    assert reason in raised.value.reason


def test_there_are_at_least_thirty_malformed_cases() -> None:
    assert len(MALFORMED) >= 30


@pytest.mark.parametrize(
    ("text", "allowed", "kind"),
    [
        ("https://example.com/", {HOST, IP, CIDR}, "url"),
        ("example.com", {URL}, "host"),
        ("10.0.0.0/24", {HOST, IP}, "cidr"),
        ("10.0.0.1", {HOST, URL}, "ip"),
    ],
)
def test_kinds_a_tool_does_not_accept_are_refused(
    text: str, allowed: set[TargetKind], kind: str
) -> None:
    with pytest.raises(TargetError, match=f"{kind} targets are not accepted"):
        parse_target(text, allowed_kinds=allowed)


@pytest.mark.parametrize("text", ["example.com:8080", "1.2.3.4:80", "[::1]:443", "a:b"])
def test_tools_without_endpoints_are_told_where_a_port_belongs(text: str) -> None:
    with pytest.raises(TargetError, match="port belongs in the tool config or a URL"):
        parse_target(text, allowed_kinds={HOST, IP, CIDR, URL})


def test_cidr_limits_are_parameters() -> None:
    assert parse_target("10.0.0.0/16", allowed_kinds={CIDR}, ipv4_min_prefix=16).value == (
        "10.0.0.0/16"
    )
    with pytest.raises(TargetError, match=r"at most a /28 \(16 addresses\)"):
        parse_target("10.0.0.0/27", allowed_kinds={CIDR}, ipv4_min_prefix=28)
    with pytest.raises(TargetError, match="at most a /124"):
        parse_target("2001:db8::/120", allowed_kinds={CIDR}, ipv6_min_prefix=124)


def test_normalize_hostname_is_the_rule_for_names() -> None:
    assert normalize_hostname("Straße.Example.") == "strasse.example"
    with pytest.raises(TargetError):
        normalize_hostname("bad_name.example")
