"""Findings from a parsed ZAP report: one per rule, place and parameter.

Decisions:
- A finding is one rule (`alertRef`, else `pluginid`) at one location: method, normalised URI
  and parameter. That is ZAP's own idea of where an alert is: its Sites tree keys a node by
  method, path and the *names* of the query parameters (`GET:search(q)`), not their values.
  So the fingerprint is (rule, method, URI without query values or fragment, parameter),
  with scheme and host lowercased and a default port dropped. Query values (cache busters,
  session ids), attack strings, evidence and dates change between scans and stay out.
- `alertRef` when the report has it: it tells apart the variants of one rule (`10020-1`,
  `10020-2`), and for a rule's base variant it equals `pluginid`, which is what reports
  before ZAP 2.10 give, so base variants keep their identity across those versions.
- Instances that share a location fold into one finding; its evidence lists them (the first
  `MAX_INSTANCES`, with the total). An alert with no instance (site-wide, such as "HTTP Only
  Site") is located at its site.
- Confidence 0 means a person or an alert filter marked the alert a false positive: such an
  alert stays in the report data and yields no finding.
- ZAP's risk is the severity: 0 info, 1 low, 2 medium, 3 high; ZAP has no critical.
- Texts: the description, solution and other info are HTML in ZAP (`<p>` per paragraph);
  findings carry them as plain text, a line per paragraph. Evidence is quoted verbatim. Every
  text is cut at `MAX_TEXT` characters: ZAP's evidence can be a whole response (1.3 MB in
  one real report), and the raw report, which the job keeps, has it all.
- References are the URLs of ZAP's reference text, then the CWE entry when there is one.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from contracts.findings import Finding, Severity, fingerprint
from contracts.zap import ZapAlert, ZapInstance, ZapReport, ZapSite

MAX_TEXT = 2000
MAX_INSTANCES = 20
_TOOL = "zap"
SEVERITIES = (Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH)
CONFIDENCES = ("false positive", "low", "medium", "high", "confirmed")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|ul|ol|h[1-6]|tr|table)\b[^<>]*>", re.I)
# A tag starts with a letter right after "<", so "if a < b and c > d" is left alone.
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(slots=True)
class _Group:
    """The instances of one alert that share a location: the makings of one finding."""

    site: ZapSite
    alert: ZapAlert
    method: str
    param: str
    instances: list[ZapInstance] = field(default_factory=list)


def report_findings(report: ZapReport) -> list[Finding]:
    groups: dict[str, _Group] = {}
    for site in report.sites:
        for alert in site.alerts:
            if alert.confidence == 0:
                continue
            rule = alert.alert_ref or alert.plugin_id
            for instance in alert.instances or (ZapInstance(uri=site.name),):
                method = instance.method.strip().upper()
                param = instance.param
                key = fingerprint(_TOOL, rule, method, location(instance.uri), param)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(site, alert, method, param)
                group.instances.append(instance)
    return [_finding(key, group) for key, group in groups.items()]


def location(uri: str) -> str:
    """`uri` as a stable location: lowercase scheme and host, no default port, no query
    values, no fragment. A URI that does not parse is its own location, as written."""
    text = uri.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)})
    query = "?" + "&".join(names) if names else ""
    return f"{scheme}://{netloc}{parts.path or '/'}{query}"


def html_text(text: str) -> str:
    """ZAP's HTML snippets as plain text: a line per paragraph or list item, no tags."""
    plain = html.unescape(_TAG.sub("", _BLOCK_TAG.sub("\n", text)))
    lines = (_SPACES.sub(" ", line).strip() for line in plain.splitlines())
    return "\n".join(line for line in lines if line)


def cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}… [{len(text) - MAX_TEXT} more characters in the raw report]"


def _finding(key: str, group: _Group) -> Finding:
    alert, site = group.alert, group.site
    first = group.instances[0]
    host, port = _endpoint(first.uri, site)
    return Finding(
        tool=_TOOL,
        severity=SEVERITIES[alert.risk_code],
        title=alert.alert or alert.name or f"ZAP rule {alert.plugin_id}",
        fingerprint=key,
        description=cut(html_text(alert.description)),
        host=host,
        port=port,
        protocol="tcp",
        url=first.uri or site.name,
        evidence=_evidence(group),
        references=_references(alert),
    )


def _endpoint(uri: str, site: ZapSite) -> tuple[str, int | None]:
    """Host and port the instance was found on; the site's when the URI does not say."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return site.host, site.port
    return (parts.hostname or site.host), (port or site.port)


def _evidence(group: _Group) -> dict[str, Any]:
    alert = group.alert
    fields: dict[str, Any] = {
        "plugin_id": alert.plugin_id,
        "alert_ref": alert.alert_ref,
        "confidence": "" if alert.confidence is None else CONFIDENCES[alert.confidence],
        "cwe_id": alert.cwe_id,
        "wasc_id": alert.wasc_id,
        "method": group.method,
        "param": group.param,
        "solution": cut(html_text(alert.solution)),
        "other_info": cut(html_text(alert.other_info)),
        "instances": [_instance(i) for i in group.instances[:MAX_INSTANCES]],
    }
    if len(group.instances) > MAX_INSTANCES:
        fields["instance_count"] = len(group.instances)
    return {name: value for name, value in fields.items() if value not in ("", None, [])}


def _instance(instance: ZapInstance) -> dict[str, str]:
    fields = {
        "uri": instance.uri,
        "attack": cut(instance.attack),
        "evidence": cut(instance.evidence),
        "other_info": cut(html_text(instance.other_info)),
    }
    return {name: value for name, value in fields.items() if value}


def _references(alert: ZapAlert) -> tuple[str, ...]:
    urls = [
        word
        for word in html_text(alert.reference).split()
        if word.startswith(("http://", "https://"))
    ]
    if alert.cwe_id is not None:
        urls.append(f"https://cwe.mitre.org/data/definitions/{alert.cwe_id}.html")
    return tuple(dict.fromkeys(urls))
