from __future__ import annotations

from typing import Any

import pytest

from scanners import decode_config
from scanners.dns.config import RECORD_TYPES, DnsConfig, nameserver
from scanners.errors import ConfigError


def test_defaults_resolve_everything_with_the_system_resolvers() -> None:
    config = decode_config("dns", {})
    assert config == DnsConfig()
    assert config.resolver == "auto"
    assert config.resolvers == ()
    assert config.record_types == RECORD_TYPES == ("a", "aaaa", "cname", "mx", "ns", "txt")


def test_every_option_decodes() -> None:
    raw = {
        "resolver": "dnspython",
        "resolvers": ["127.0.0.1:5353", "[::1]"],
        "record_types": ["a", "cname"],
        "sources": ["crtsh", "alienvault"],
        "max_enumeration_minutes": 30,
        "retries": 3,
        "concurrency": 50,
    }
    config = decode_config("dns", raw)
    assert isinstance(config, DnsConfig)
    assert config.resolvers == ("127.0.0.1:5353", "[::1]")
    assert config.sources == ("crtsh", "alienvault")


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"resolverz": []}, "resolverz", "is not a known option"),
        ({"resolver": "bind"}, "resolver", "Invalid enum value 'bind'"),
        ({"resolvers": ["dns.google"]}, "resolvers[0]", "is not an IP address"),
        ({"resolvers": ["1.1.1.1", "::1"]}, "resolvers[1]", "brackets go around IPv6"),
        ({"resolvers": ["[127.0.0.1]:53"]}, "resolvers[0]", "brackets go around IPv6"),
        ({"resolvers": ["127.0.0.1:0"]}, "resolvers[0]", "port 0 is out of range"),
        ({"resolvers": ["127.0.0.1:99999"]}, "resolvers[0]", "port 99999 is out of range"),
        ({"resolvers": ["127.0.0.1:53:53"]}, "resolvers[0]", "is not an IP address"),
        ({"resolvers": ["-r 1.1.1.1"]}, "resolvers[0]", "is not an IP address"),
        ({"resolvers": ["127.0.0.1", "127.0.0.1"]}, "resolvers", "more than once"),
        ({"resolvers": [f"127.0.0.{i}" for i in range(9)]}, "resolvers", "length <= 8"),
        ({"record_types": ["a", "soa"]}, "record_types[1]", "Invalid enum value 'soa'"),
        ({"record_types": []}, "record_types", "length >= 1"),
        ({"record_types": ["a", "a"]}, "record_types", "more than once"),
        ({"sources": ["crt sh"]}, "sources[0]", "matching regex"),
        ({"sources": ["-all"]}, "sources[0]", "matching regex"),
        ({"sources": ["crtsh"], "all_sources": True}, "all_sources", "cannot be combined"),
        ({"max_enumeration_minutes": 0}, "max_enumeration_minutes", ">= 1"),
        ({"max_enumeration_minutes": 721}, "max_enumeration_minutes", "<= 720"),
        ({"retries": 6}, "retries", "<= 5"),
        ({"concurrency": 0}, "concurrency", ">= 1"),
        ({"resolvers": "127.0.0.1"}, "resolvers", "Expected `array`, got `str`"),
    ],
)
def test_bad_options_name_the_field(raw: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        decode_config("dns", raw)
    assert raised.value.field == field
    assert reason in raised.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:DB8::1]:53", ("2001:db8::1", 53)),
    ],
)
def test_nameserver_reads_ip_and_port(text: str, expected: tuple[str, int]) -> None:
    assert nameserver(text) == expected
