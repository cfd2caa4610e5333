"""The DNS recon options a scan request may set: a closed list, no free-form argument."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

import msgspec

from scanners.errors import ConfigError

Resolver = Literal["auto", "dnsx", "dnspython"]
RecordType = Literal["a", "aaaa", "cname", "mx", "ns", "txt"]
RECORD_TYPES: tuple[RecordType, ...] = ("a", "aaaa", "cname", "mx", "ns", "txt")
# subfinder's source names (`subfinder -ls`) are short lowercase words: "crtsh", "alienvault".
SourceName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]{1,32}$")]
DNS_PORT = 53
_MAX_RESOLVERS = 8
_BRACKETED = re.compile(r"\[(?P<host>[^\]]+)\](?::(?P<port>[0-9]{1,5}))?")
_PLAIN = re.compile(r"(?P<host>[0-9.]+)(?::(?P<port>[0-9]{1,5}))?")


class DnsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options for one recon run. Construct it through `scanners.decode_config`.

    - `resolver`: "dnsx" requires the dnsx program, "dnspython" resolves in-process, and
      "auto" uses dnsx when the job can find it and dnspython otherwise.
    - `resolvers`: the nameservers to ask, as IP or IP:PORT (`[IPv6]:PORT`); empty means the
      job's system resolvers (/etc/resolv.conf), for dnsx too, whose own default would be a
      list of public resolvers.
    - `sources`/`all_sources`: subfinder's `-s` and `-all`; `max_enumeration_minutes` its
      `-max-time`.
    - `retries`: attempts per query; `concurrency`: queries in flight.
    """

    resolver: Resolver = "auto"
    resolvers: Annotated[tuple[str, ...], msgspec.Meta(max_length=_MAX_RESOLVERS)] = ()
    record_types: Annotated[tuple[RecordType, ...], msgspec.Meta(min_length=1)] = RECORD_TYPES
    sources: Annotated[tuple[SourceName, ...], msgspec.Meta(max_length=64)] = ()
    all_sources: bool = False
    max_enumeration_minutes: Annotated[int, msgspec.Meta(ge=1, le=720)] = 10
    retries: Annotated[int, msgspec.Meta(ge=1, le=5)] = 2
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10

    def __post_init__(self) -> None:
        for index, text in enumerate(self.resolvers):
            nameserver(text, f"resolvers[{index}]")
        for field, values in (
            ("resolvers", self.resolvers),
            ("record_types", self.record_types),
            ("sources", self.sources),
        ):
            if len(set(values)) != len(values):
                raise ConfigError(field, "lists a value more than once")
        if self.sources and self.all_sources:
            raise ConfigError("all_sources", "cannot be combined with sources")


def nameserver(text: str, field: str = "resolvers") -> tuple[str, int]:
    """(address, port) from "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT"; ConfigError if not.

    Addresses only, never names: resolving a resolver's name would need a resolver.
    """
    match = _BRACKETED.fullmatch(text) or _PLAIN.fullmatch(text)
    host = match.group("host") if match else text
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(field, f"{text!r} is not an IP address, IP:PORT or [IPv6]:PORT") from None
    if match is None or (address.version == 6) != text.startswith("["):
        raise ConfigError(
            field, f"{text!r}: brackets go around IPv6 addresses only: 192.0.2.1:53, [::1]:53"
        )
    port = int(match.group("port") or DNS_PORT)
    if not 1 <= port <= 65535:
        raise ConfigError(field, f"port {port} is out of range 1-65535")
    return str(address), port
