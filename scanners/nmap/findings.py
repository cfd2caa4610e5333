"""Findings from one parsed nmap host: its open ports, and what vulners says about them.

Decisions:
- Only state "open" is a finding. "open|filtered" (typical for UDP) means nmap could not
  tell, and "filtered"/"closed" are not exposure; all of them stay in `NmapRun` data.
- A finding's host is the host's IPv4 address, else its IPv6 address; only when nmap gives
  neither, its first hostname or MAC address. Hostnames go in evidence.
- Every vulners entry is a finding, CVEs and non-CVE ids alike (exploit-db, packetstorm,
  githubexploit...): a public exploit for the running version is worth seeing on its own,
  and its `type` and `is_exploit` say what it is. An id listed under two CPEs of one port is
  one finding. A missing or unreadable CVSS score counts as 0, i.e. info.
- Fingerprints are (host, protocol, port) for a port and (host, protocol, port, id) for a
  vulners entry: nothing that changes between rescans (versions, times, scores).
- Host scripts (smb-os-discovery, clock-skew...) describe the host, not an exposure; they are
  kept in `NmapRun` data only.
- Evidence holds the very `Service`/`Script` Structs of the data, not copies: they are frozen,
  encode to the same JSON, and a large scan's result would otherwise be held twice. After a
  trip over the bus, evidence is plain JSON objects as for every other tool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from contracts.findings import Finding, Severity, fingerprint
from contracts.nmap import Host, Port, Script, Service

_TOOL = "nmap"
# Older vulners.nse versions print text only: "\tCVE-2018-15919\t5.0\thttps://vulners.com/cve/
# CVE-2018-15919\t*EXPLOIT*" under a "cpe:/a:...:" line.
_VULNERS_LINE = re.compile(
    r"\s*(?P<id>\S+)\s+(?P<cvss>[0-9]+(?:\.[0-9]+)?)\s+"
    r"https?://vulners\.com/(?P<type>[^/\s]+)/\S+(?P<exploit>\s+\*EXPLOIT\*)?\s*"
)
_PLAIN = re.compile(r"[A-Za-z0-9:._-]+")
_CPE_LINE = re.compile(r"\s*(?P<cpe>cpe:/\S+?):?\s*")


@dataclass(slots=True)
class _Vuln:
    """One vulners id on one port, gathered across the CPE tables that list it."""

    id: str
    type: str
    cvss: float
    is_exploit: bool = False
    cpes: list[str] = field(default_factory=list)


def host_findings(host: Host) -> list[Finding]:
    address = host_address(host)
    if not address:
        return []
    # nmap lists a name once per source (user-given and PTR); evidence needs it once.
    hostnames = tuple(dict.fromkeys(name.name for name in host.hostnames if name.name))
    findings: list[Finding] = []
    for port in host.ports:
        if port.state != "open":
            continue
        findings.append(_open_port(address, hostnames, port))
        for script in port.scripts:
            if script.id == "vulners":
                findings += _vulners_findings(address, port, script)
    return findings


def severity_for_cvss(score: float) -> Severity:
    """0 → info, below 4 low, below 7 medium, below 9 high, 9 and above critical."""
    if not score > 0:  # also catches NaN
        return Severity.INFO
    if score < 4:
        return Severity.LOW
    if score < 7:
        return Severity.MEDIUM
    if score < 9:
        return Severity.HIGH
    return Severity.CRITICAL


def _open_port(address: str, hostnames: tuple[str, ...], port: Port) -> Finding:
    service = port.service
    name = f" ({service.name})" if service is not None and service.name else ""
    evidence: dict[str, Any] = {"reason": port.reason} if port.reason else {}
    if service is not None:
        evidence["service"] = service
    if hostnames:
        evidence["hostnames"] = hostnames
    if port.scripts:
        # vulners' tables are spelled out in its own findings; here its text is enough.
        evidence["scripts"] = tuple(
            Script(id=script.id, output=script.output) if script.id == "vulners" else script
            for script in port.scripts
        )
    return Finding(
        tool=_TOOL,
        severity=Severity.INFO,
        title=f"Open port {port.portid}/{port.protocol}{name}",
        fingerprint=fingerprint(_TOOL, address, port.protocol, port.portid),
        description=_describe(service),
        host=address,
        port=port.portid,
        protocol=port.protocol,
        evidence=evidence,
    )


def _describe(service: Service | None) -> str:
    """What nmap knows of the service, and how: `method="table"` names it from nmap's table
    of well-known ports (nmap did not probe, or its probes matched nothing); `"probed"`
    means a service probe's answer matched a signature."""
    if service is None:
        return ""
    parts = [part for part in (service.product, service.version) if part]
    if service.extrainfo:
        parts.append(f"({service.extrainfo})")
    if service.tunnel:
        parts.append(f"over {service.tunnel}")
    name, text = service.name, " ".join(parts)
    if service.method == "table":
        if not name or name == "unknown":
            return "not identified: nmap's port table has no service for this port"
        return f"{name} (guessed from the port number)"
    if service.method == "probed" and not service.product and not service.version:
        # nmap's name for a service that accepts connections and closes them unanswered.
        if name == "tcpwrapped":
            return "tcpwrapped: nmap's probes connected and were closed without an answer"
        if name:
            how = "identified by nmap's probes, no product or version named"
            return f"{name}: {text}; {how}" if text else f"{name}: {how}"
    if name and text:
        return f"{name}: {text}"
    return name or text


def _vulners_findings(address: str, port: Port, script: Script) -> list[Finding]:
    vulns = _vulns_from_tables(script) if script.tables else _vulns_from_text(script.output)
    service = port.service
    return [
        Finding(
            tool=_TOOL,
            severity=severity_for_cvss(vuln.cvss),
            title=vuln.id if vuln.type == "cve" else _non_cve_title(vuln),
            fingerprint=fingerprint(_TOOL, address, port.protocol, port.portid, vuln.id),
            description=_vuln_description(vuln, port),
            host=address,
            port=port.portid,
            protocol=port.protocol,
            evidence={
                "id": vuln.id,
                "type": vuln.type,
                "cvss": vuln.cvss,
                "is_exploit": vuln.is_exploit,
                "cpe": tuple(vuln.cpes),
                **({"service": service} if service is not None else {}),
            },
            references=_references(vuln),
        )
        for vuln in vulns.values()
    ]


def _vulns_from_tables(script: Script) -> dict[str, _Vuln]:
    vulns: dict[str, _Vuln] = {}
    for cpe_table in script.tables:
        cpe = cpe_table.key or ""
        for entry in cpe_table.tables:
            fields = {elem.key: elem.value for elem in entry.elems if elem.key}
            vuln_id = fields.get("id", "")
            if vuln_id:
                _add(vulns, vuln_id, fields.get("type", ""), fields.get("cvss"), cpe)
                vulns[vuln_id].is_exploit |= fields.get("is_exploit") == "true"
    return vulns


def _vulns_from_text(output: str) -> dict[str, _Vuln]:
    vulns: dict[str, _Vuln] = {}
    cpe = ""
    for line in output.splitlines():
        if cpe_match := _CPE_LINE.fullmatch(line):
            cpe = cpe_match.group("cpe")
        elif vuln_match := _VULNERS_LINE.fullmatch(line):
            vuln_id = vuln_match.group("id")
            _add(vulns, vuln_id, vuln_match.group("type"), vuln_match.group("cvss"), cpe)
            vulns[vuln_id].is_exploit |= vuln_match.group("exploit") is not None
    return vulns


def _add(vulns: dict[str, _Vuln], vuln_id: str, vuln_type: str, cvss: str | None, cpe: str) -> None:
    vuln = vulns.setdefault(vuln_id, _Vuln(id=vuln_id, type=vuln_type, cvss=_score(cvss)))
    if cpe and cpe not in vuln.cpes:
        vuln.cpes.append(cpe)


def _score(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


def _vuln_description(vuln: _Vuln, port: Port) -> str:
    software = f" for {', '.join(vuln.cpes)}" if vuln.cpes else ""
    exploit = "; it is a public exploit" if vuln.is_exploit else ""
    return (
        f"vulners lists {vuln.id} (CVSS {vuln.cvss:g}){software}"
        f" on {port.portid}/{port.protocol}{exploit}."
    )


def _non_cve_title(vuln: _Vuln) -> str:
    kind = f"{vuln.type} exploit" if vuln.is_exploit else vuln.type
    return f"{vuln.id} ({kind})" if kind else vuln.id


def _references(vuln: _Vuln) -> tuple[str, ...]:
    if not vuln.type:
        return ()
    page = f"https://vulners.com/{_url_part(vuln.type)}/{_url_part(vuln.id)}"
    if vuln.type == "cve":
        return (page, f"https://nvd.nist.gov/vuln/detail/{_url_part(vuln.id)}")
    return (page,)


def _url_part(text: str) -> str:
    # Ids are nearly always plain ("EDB-ID:45233"); quoting only the rest keeps this off the
    # profile of a scan with thousands of vulners entries.
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")


def host_address(host: Host) -> str:
    for kind in ("ipv4", "ipv6"):
        for address in host.addresses:
            if address.addrtype == kind and address.addr:
                return address.addr
    names = [name.name for name in host.hostnames if name.name]
    macs = [address.addr for address in host.addresses if address.addr]
    return (names or macs or [""])[0]
