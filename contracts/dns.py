"""What DNS recon (subfinder + dnsx) found, as published on `scan.results.dns`.

Record fields are named as in dnsx's JSON (`a`, `aaaa`, `cname`, `mx`, `ns`, `txt`,
`status_code` becomes `status`) so a reader can check a value against the raw output. Every
field has a default: new fields are added with defaults only.
"""

from __future__ import annotations

import msgspec


# Subclasses repeat `frozen=True` only because mypy's dataclass_transform does not inherit it.
class _Data(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    pass


class Subdomain(_Data, frozen=True):
    """One name the enumeration turned up (or the scanned domain itself), with its records.

    `out_of_scope` is empty for a name inside the scan: otherwise it says why the name is
    outside (not under the scanned domain, outside the deployment scope, not a valid
    hostname). Out-of-scope names are never resolved, so they carry no records.
    `resolved` says a resolver answered for the name; `status` is its DNS response code
    (NOERROR, NXDOMAIN, SERVFAIL...). `addresses_outside_scope` lists resolved addresses
    outside the deployment scope's networks, when the scope names any networks.
    """

    name: str
    sources: tuple[str, ...] = ()
    out_of_scope: str = ""
    resolved: bool = False
    status: str = ""
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    cname: tuple[str, ...] = ()
    mx: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    txt: tuple[str, ...] = ()
    addresses_outside_scope: tuple[str, ...] = ()


class DnsRecon(_Data, frozen=True, tag="dns", tag_field="kind"):
    """One recon run: subfinder's names for `domain`, then their records from `resolver`.

    `resolver` is "dnsx", "dnspython", or empty when nothing was resolved (a bare subfinder
    file). `resolvers` are the nameservers asked (empty: the system's). `errors` names each
    step that failed; `partial` is true when the run did not finish or a step failed.
    """

    domain: str = ""
    resolver: str = ""
    resolvers: tuple[str, ...] = ()
    subdomains: tuple[Subdomain, ...] = ()
    errors: tuple[str, ...] = ()
    partial: bool = False
    # What ran, as "name version": the recon runner and its in-process resolver.
    versions: tuple[str, ...] = ()
