"""What ZAP reported, as published on `scan.results.zap` beside the normalised findings.

One shape for every report layout the parser reads (traditional JSON and XML, ZAP 2.4 to
2.16): field names follow ZAP's own (`plugin_id` for `pluginid`, `other_info` for
`otherinfo`) so a value can be checked against the raw report, which the job also keeps.
Texts are ZAP's, HTML included; only the findings strip it. Request and response dumps of
the "-plus" report variants are not kept: they can be megabytes per instance, and the raw
report has them.
"""

from __future__ import annotations

import msgspec


# Subclasses repeat `frozen=True` only because mypy's dataclass_transform does not inherit it.
class _Data(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    pass


class ZapInstance(_Data, frozen=True):
    """One place an alert was raised: a URI, and for most rules a method and parameter."""

    uri: str = ""
    method: str = ""
    param: str = ""
    attack: str = ""
    evidence: str = ""
    other_info: str = ""
    node_name: str = ""


class ZapTag(_Data, frozen=True):
    """A classification ZAP attaches to a rule (`OWASP_2021_A05`), with its reference page."""

    tag: str = ""
    link: str = ""


class ZapAlert(_Data, frozen=True):
    """One rule's alert on one site, with every instance of it.

    `risk_code` is 0 (informational) to 3 (high); `confidence` 0 (false positive) to 4 (user
    confirmed), None when the report has none. `cwe_id` and `wasc_id` are None when ZAP gives
    none (it writes -1 or 0 for "no mapping"). `alert_ref` names a rule's variant
    (`10020-1`); reports before ZAP 2.10 have only `plugin_id`.
    """

    plugin_id: str = ""
    alert_ref: str = ""
    alert: str = ""
    name: str = ""
    risk_code: int = 0
    confidence: int | None = None
    description: str = ""
    solution: str = ""
    other_info: str = ""
    reference: str = ""
    cwe_id: int | None = None
    wasc_id: int | None = None
    source_id: str = ""
    count: int | None = None
    systemic: bool | None = None
    tags: tuple[ZapTag, ...] = ()
    instances: tuple[ZapInstance, ...] = ()


class ZapSite(_Data, frozen=True):
    """A site as ZAP groups alerts: `name` is its origin (`https://example.com`)."""

    name: str = ""
    host: str = ""
    port: int | None = None
    ssl: bool | None = None
    alerts: tuple[ZapAlert, ...] = ()


class ZapReport(_Data, frozen=True, tag="zap", tag_field="kind"):
    """One ZAP report. `kind` tags it inside the union of every tool's result data.

    `format` is the layout it was read from: "json" (traditional JSON) or "xml"
    (traditional XML, `OWASPZAPReport`). `generated` is ZAP's own text, localised in some
    versions ("Fr., 30 Sep. 2022"), so it is kept as text; `created` is ISO 8601 where ZAP
    2.16 and later write it.
    """

    format: str = ""
    program_name: str = ""
    version: str = ""
    generated: str = ""
    created: str = ""
    sites: tuple[ZapSite, ...] = ()
