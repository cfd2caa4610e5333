"""What a scan looked at: a finding of its tool and target that it covered and did not see is
fixed. Each tool declares its coverage in `scanners/<tool>/coverage.py`; this is its shape,
carried on the last part of a `ScanResult` and kept on the scan's row."""

from __future__ import annotations

import msgspec

from contracts.findings import Finding


class PortRange(msgspec.Struct, frozen=True, array_like=True):
    protocol: str
    low: int
    high: int


class Coverage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The findings of a tool on a target that one complete scan looked for.

    - `everything`: every finding of the tool on the target (sslyze's endpoint with every
      check run, DNS recon's domain).
    - `hosts` and `ports`: a finding at one of these hosts on one of these (protocol, port)
      ranges (nmap); `checks` names the finding kinds beyond the port itself that the scan ran
      (nmap: "vulners"), so a scan without vulners fixes no vulners finding.
    - `url_prefix`: a finding whose URL starts with it, or that has no URL (ZAP).
    An empty coverage covers nothing.
    """

    everything: bool = False
    hosts: tuple[str, ...] = ()
    ports: tuple[PortRange, ...] = ()
    checks: tuple[str, ...] = ()
    url_prefix: str = ""


# The finding kind of port-level findings; others name the check in `evidence["check"]` or
# are recognised by their tool (see `kind_of`).
PORT = "port"


def kind_of(finding: Finding) -> str:
    """Which check produced a host/port finding: "port" for the port itself, else the check.

    nmap's vulners findings carry the vulners id and CVSS in their evidence.
    """
    if finding.tool == "nmap" and "cvss" in finding.evidence:
        return "vulners"
    check = finding.evidence.get("check")
    return check if isinstance(check, str) and check else PORT


def covers(coverage: Coverage, finding: Finding) -> bool:
    if coverage.everything:
        return True
    if coverage.url_prefix:
        return not finding.url or finding.url.startswith(coverage.url_prefix)
    if not coverage.hosts or finding.host not in coverage.hosts or finding.port is None:
        return False
    kind = kind_of(finding)
    if kind != PORT and kind not in coverage.checks:
        return False
    return any(
        r.protocol == finding.protocol and r.low <= finding.port <= r.high for r in coverage.ports
    )
