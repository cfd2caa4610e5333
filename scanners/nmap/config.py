"""The nmap options a scan request may set: a closed list, so no free-form argument can exist."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from scanners.errors import ConfigError

ScanType = Literal["connect", "syn"]
# Safe, useful NSE scripts only. Categories such as "intrusive", "brute" or "dos", and scripts
# that take arguments, stay out until someone decides each one on purpose.
NseScript = Literal[
    "default",
    "vulners",
    "ssl-cert",
    "ssl-enum-ciphers",
    "http-title",
    "http-headers",
    "banner",
]

_PORT_ITEM = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")
# A list longer than this is almost surely a generated mistake; "1-65535" covers everything.
_MAX_PORTS_LENGTH = 1024


class NmapConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options for one nmap scan. Construct it through `scanners.decode_config`.

    `reverse_dns: false` adds `-n`: nmap then sends no DNS queries for the addresses it scans,
    which is faster and keeps a scan of 127.0.0.1 from talking to the resolver at all.
    """

    ports: str | None = None
    scan_type: ScanType = "connect"
    timing: Annotated[int, msgspec.Meta(ge=0, le=5)] = 3
    service_detection: bool = False
    scripts: tuple[NseScript, ...] = ()
    host_timeout_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    reverse_dns: bool = True

    def __post_init__(self) -> None:
        if self.ports is not None:
            _check_ports(self.ports)
        if len(set(self.scripts)) != len(self.scripts):
            raise ConfigError("scripts", "lists a script more than once")
        # vulners looks up the CPEs that version detection finds; without -sV it reports nothing
        # and the scan would look clean when it was never checked.
        if "vulners" in self.scripts and not self.service_detection:
            raise ConfigError("scripts", "vulners needs service_detection: true")


def _check_ports(ports: str) -> None:
    """Digits, commas and ascending ranges of 1-65535, as in `22,80,8000-8100`."""
    if not ports:
        raise ConfigError("ports", "is empty; leave it out to scan nmap's default ports")
    if len(ports) > _MAX_PORTS_LENGTH:
        raise ConfigError("ports", f"is longer than {_MAX_PORTS_LENGTH} characters")
    for item in ports.split(","):
        match = _PORT_ITEM.fullmatch(item)
        if match is None:
            raise ConfigError(
                "ports", f"{item!r} is not a port or a range such as 8000-8100 (digits only)"
            )
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(2))
        for port in (low, high):
            if not 1 <= port <= 65535:
                raise ConfigError("ports", f"port {port} is out of range 1-65535")
        if low > high:
            raise ConfigError("ports", f"range {item} runs backwards")
