"""Findings from DNS recon data.

Decisions:
- Every in-scope name is one info finding ("Subdomain x", "Domain x" for the scanned domain
  itself) whose evidence holds its records and the sources that named it, resolved or not:
  a name that no longer resolves is still attack surface on record somewhere.
- An out-of-scope name is a distinct info finding with `out_of_scope` (the reason) in its
  evidence and no `host`, so nothing that picks targets from findings' hosts can pick it.
- A dangling CNAME, an in-scope name whose CNAME chain ends in NXDOMAIN, is a medium finding
  of its own: the classic subdomain-takeover candidate (whoever registers the missing
  target serves content under the name).
- Fingerprints are location only: ("name", name), ("out_of_scope", name) and
  ("dangling_cname", name, last CNAME target). Records, sources and statuses change between
  rescans and stay out of them.
"""

from __future__ import annotations

from typing import Any

from contracts.dns import DnsRecon, Subdomain
from contracts.findings import Finding, Severity, fingerprint

_TOOL = "dns"
_RECORDS = ("a", "aaaa", "cname", "mx", "ns", "txt")


def recon_findings(recon: DnsRecon) -> list[Finding]:
    findings: list[Finding] = []
    for sub in recon.subdomains:
        if sub.out_of_scope:
            findings.append(_out_of_scope(sub, recon.domain))
            continue
        findings.append(_name(sub, recon))
        if is_dangling(sub):
            findings.append(_dangling(sub))
    return findings


def is_dangling(sub: Subdomain) -> bool:
    return bool(sub.cname) and sub.status == "NXDOMAIN"


def _name(sub: Subdomain, recon: DnsRecon) -> Finding:
    evidence: dict[str, Any] = {"sources": sub.sources} if sub.sources else {}
    if sub.resolved:
        evidence["status"] = sub.status
    for record in _RECORDS:
        if values := getattr(sub, record):
            evidence[record] = values
    if sub.addresses_outside_scope:
        evidence["addresses_outside_scope"] = sub.addresses_outside_scope
    kind = "Domain" if sub.name == recon.domain else "Subdomain"
    return Finding(
        tool=_TOOL,
        severity=Severity.INFO,
        title=f"{kind} {sub.name}",
        fingerprint=fingerprint(_TOOL, "name", sub.name),
        description=_describe(sub, recon.resolver),
        host=sub.name,
        evidence=evidence,
    )


def _describe(sub: Subdomain, resolver: str) -> str:
    parts = [f"Found by {', '.join(sub.sources)}."] if sub.sources else []
    addresses = sub.a + sub.aaaa
    via = f" via {' -> '.join(sub.cname)}" if sub.cname else ""
    if addresses:
        parts.append(f"Resolves{via} to {', '.join(addresses)}.")
    elif sub.resolved:
        parts.append(f"No address{via} ({sub.status or 'no status'}).")
    elif resolver:
        # dnsx prints nothing for a name without records of the types asked for.
        parts.append(f"No answer from {resolver} with records.")
    else:
        parts.append("Not resolved.")
    if sub.addresses_outside_scope:
        outside = ", ".join(sub.addresses_outside_scope)
        parts.append(f"Outside the scope's networks: {outside}; they cannot be scanned.")
    return " ".join(parts)


def _out_of_scope(sub: Subdomain, domain: str) -> Finding:
    evidence: dict[str, Any] = {"name": sub.name, "out_of_scope": sub.out_of_scope}
    if sub.sources:
        evidence["sources"] = sub.sources
    context = f" while enumerating {domain}" if domain else ""
    return Finding(
        tool=_TOOL,
        severity=Severity.INFO,
        title=f"Out-of-scope name {sub.name}",
        fingerprint=fingerprint(_TOOL, "out_of_scope", sub.name),
        description=(
            f"{sub.name} was reported{context} but is {sub.out_of_scope}."
            " It was not resolved and is no target for any scan."
        ),
        evidence=evidence,
    )


def _dangling(sub: Subdomain) -> Finding:
    target = sub.cname[-1]
    return Finding(
        tool=_TOOL,
        severity=Severity.MEDIUM,
        title=f"Dangling CNAME {sub.name} -> {target}",
        fingerprint=fingerprint(_TOOL, "dangling_cname", sub.name, target),
        description=(
            f"{sub.name} is an alias of {target}, which does not exist (NXDOMAIN). Whoever"
            f" can register {target} controls what {sub.name} serves: a subdomain takeover"
            " candidate. Remove the CNAME or restore its target."
        ),
        host=sub.name,
        evidence={"cname": sub.cname, "status": sub.status},
        references=("https://developer.mozilla.org/en-US/docs/Web/Security/Subdomain_takeovers",),
    )
