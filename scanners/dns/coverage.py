"""What a finished DNS recon covered, and whether it reached anything at all. Pure.

A recon covers its domain: every DNS finding of the target. A run in which no resolver
answered for any name (not even NXDOMAIN) reached nothing and must fail.
"""

from __future__ import annotations

from contracts.coverage import Coverage
from contracts.dns import DnsRecon
from scanners.dns.config import DnsConfig
from scanners.targets import Target


def coverage(config: DnsConfig, target: Target, data: DnsRecon) -> Coverage:
    return Coverage(everything=True)


def unreached(data: DnsRecon) -> str:
    if any(sub.resolved or sub.status for sub in data.subdomains):
        return ""
    return "DNS recon reached nothing: no resolver answered for any name"
