"""Which discovered names and addresses belong to a scan. Pure.

A name is the scan's when it is a valid hostname, is the scanned domain or below it, and lies
inside the deployment scope (`JETSCAN_SCOPE`). Anything else is reported with the reason and
never resolved: resolving asks the configured resolver rather than the host, but a recursive
resolver then asks the name's own (third-party) nameservers on the scan's behalf, and an
address learned that way is one step from being scanned.
"""

from __future__ import annotations

import ipaddress

from scanners.errors import TargetError
from scanners.scope import Scope, in_scope, refused_address
from scanners.targets import Target, TargetKind, normalize_hostname

OUTSIDE_SCOPE = "outside the deployment scope (JETSCAN_SCOPE)"


def judge(text: str, domain: str, scope: Scope | None) -> tuple[str, str]:
    """(the name normalised, or as given when invalid; why it is out of scope, or "").

    An empty `domain` or a None `scope` skips that check: a bare subfinder or dnsx file
    parsed on its own has no scan around it.
    """
    try:
        name = _dns_name(text)
    except TargetError as exc:
        return text, f"not a valid hostname: {exc.reason}"
    if domain and name != domain and not name.endswith(f".{domain}"):
        return name, f"not {domain} or one of its subdomains"
    if scope is not None:
        target = Target(kind=TargetKind.HOST, value=name, host=name, domain=domain or name)
        if not in_scope(target, scope):
            return name, OUTSIDE_SCOPE
    return name, ""


def _dns_name(text: str) -> str:
    """A hostname, normalised; DNS names may also hold "_" (`_dmarc`, `_sip._tcp`)."""
    if "_" in text and text.isascii():
        normalize_hostname(text.replace("_", "a"))
        return text.lower().removesuffix(".")
    return normalize_hostname(text)


def addresses_outside(addresses: tuple[str, ...], scope: Scope | None) -> tuple[str, ...]:
    """The addresses a scan of the name may not reach: outside the scope's networks, when it
    names networks, and in any case those no scan follows a name to (private, loopback,
    link-local, the metadata service: `scanners.scope.refused_address`) unless named.

    A value that is not an address counts as outside when the scope names networks: it cannot
    be shown to be inside.
    """
    if scope is None:
        return ()
    outside = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            if scope.networks:
                outside.append(text)
            continue
        if (
            scope.networks and not any(address in network for network in scope.networks)
        ) or refused_address(text, scope):
            outside.append(text)
    return tuple(outside)
