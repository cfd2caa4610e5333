"""What a finished nmap scan covered, and whether it reached anything at all. Pure.

A scan covers each (host, protocol, port) it probed on a host it found up: the ports come
from nmap's own `<scaninfo services=...>` (so nmap's default port list counts exactly), the
hosts from the `<host>` elements with status "up". A host that was down, or that nmap gave
up on (`--host-timeout`), is not covered: not seeing its ports there says nothing. Vulners
findings are covered only when the scan ran vulners.
"""

from __future__ import annotations

from contracts.coverage import Coverage, PortRange
from contracts.nmap import Host, NmapRun
from scanners.nmap.config import NmapConfig
from scanners.nmap.findings import host_address
from scanners.targets import Target


def coverage(config: NmapConfig, target: Target, data: NmapRun) -> Coverage:
    ports = tuple(
        PortRange(info.protocol, low, high)
        for info in data.scan_info
        for low, high in _ranges(info.services)
    )
    hosts = tuple(dict.fromkeys(a for h in data.hosts if _covered(h) for a in [host_address(h)]))
    checks = ("vulners",) if "vulners" in config.scripts else ()
    return Coverage(hosts=tuple(h for h in hosts if h), ports=ports, checks=checks)


def unreached(data: NmapRun) -> str:
    """Why the scan reached nothing ("" when some host was up)."""
    if any(h.status == "up" for h in data.hosts) or (data.hosts_up or 0) > 0:
        return ""
    return "nmap reached nothing: every host scanned was down"


def _covered(host: Host) -> bool:
    # nmap ends a host it gave up on with end == start or no end; a timed-out host has
    # status_reason "host-timeout" in some versions. Only a host that completed counts.
    return host.status == "up" and host.status_reason != "host-timeout"


def _ranges(services: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for item in services.split(","):
        low, _, high = item.strip().partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            out.append((int(low), int(high or low)))
    return out
