"""What a finished ZAP scan covered, and whether it reached anything at all. Pure.

A ZAP scan covers the URLs under its target (the target URL as a prefix, so a scan of
`https://example.com/app/` says nothing about `/admin/`); a finding with no URL is site-wide
and covered too. A report that names no site means ZAP never got a response from the target.
"""

from __future__ import annotations

from contracts.coverage import Coverage
from contracts.zap import ZapReport
from scanners.targets import Target
from scanners.zap.config import ZapConfig


def coverage(config: ZapConfig, target: Target, data: ZapReport) -> Coverage:
    return Coverage(url_prefix=target.value)


def unreached(data: ZapReport) -> str:
    if data.sites:
        return ""
    return "ZAP reached nothing: the target never answered, so the report names no site"
