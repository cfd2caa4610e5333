"""Before a scanner sends a packet: where does the target's name lead?

A hostname inside the scope can resolve anywhere its DNS says. The job resolves it first (the
tool's configured nameservers, else `JETSCAN_RESOLVERS`, else the system's resolver with
/etc/hosts) and refuses the scan when any address is one the deployment never reaches
through a name (`scanners.scope.refused_address`). The resolution is a DNS query to the
resolver; the target gets nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import dns.asyncresolver
import dns.exception
import dns.resolver

from scanners.scope import Scope, refused_address
from scanners.targets import Target, TargetKind

_TIMEOUT = 5.0


class Refused(Exception):
    """The target's name leads somewhere the scan may not go."""


def hostname(target: Target) -> str:
    """The name the scanner would resolve, or "" for a target that is an address."""
    if target.kind in (TargetKind.IP, TargetKind.CIDR):
        return ""
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        return target.host
    return ""


async def addresses(name: str, nameservers: tuple[tuple[str, int], ...]) -> list[str]:
    """Every A and AAAA address of `name`; [] when it has none."""
    if not nameservers:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        return sorted({str(info[4][0]) for info in infos})
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host for host, _ in nameservers]
    resolver.nameserver_ports = {host: port for host, port in nameservers}
    resolver.lifetime = _TIMEOUT
    found: set[str] = set()
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            raise Refused(f"could not resolve {name} to check where it leads: {exc}") from exc
        found.update(r.to_text() for r in answer)
    return sorted(found)


async def screen(
    target: Target, scope_text: str, nameservers: tuple[tuple[str, int], ...]
) -> list[str]:
    """The target's addresses; raise Refused naming the first one the scan may not reach."""
    name = hostname(target)
    if not name:
        return []
    scope = Scope.parse(scope_text)
    found = await addresses(name, nameservers)
    for address in found:
        why = refused_address(address, scope)
        if why:
            raise Refused(f"{name} resolves to {why}; nothing was sent to it")
    return found


def pin(found: list[str]) -> str:
    """The one checked address the tool is given: the first IPv4 one, else the first."""
    for address in found:
        if ":" not in address:
            return address
    return found[0] if found else ""
