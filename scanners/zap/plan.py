"""The Automation Framework plan for one scan, as data. Pure: `command` writes it as YAML.

The plan (https://www.zaproxy.org/docs/desktop/addons/automation-framework/):
- `env`: one context, "jetscan", holding the target URL and an include path that keeps ZAP
  under it (`scanOnlyInScope` keeps the passive scanner there as well); `failOnError: false`
  so a failing job (an unreachable page, an unknown add-on) still leaves the report of what
  was found, while ZAP's exit code 1 still marks the scan failed.
- jobs, in order: `passiveScan-config`, `spider`, `spiderAjax` (optional), `passiveScan-wait`,
  `activeScan` (optional, with a named policy), `report` (template `traditional-json`, into
  the job's work directory).

Time limits: every phase gets its configured minutes. When the scan's deadline is shorter
than the phases plus ZAP's start-up and report (`OVERHEAD_SECONDS`), every phase is
shortened in proportion (whole minutes, at least one: ZAP reads 0 as unlimited), so ZAP ends
on its own and writes its report before the job's deadline. When even a minute each does not
fit, the deadline stops ZAP and the scan ends TIMED_OUT.
"""

from __future__ import annotations

import re
from typing import Any

from scanners.context import JobContext
from scanners.targets import Target
from scanners.zap.config import OVERHEAD_SECONDS, ZapConfig

CONTEXT = "jetscan"
REPORT_TEMPLATE = "traditional-json"
_DEFAULT_POLICY = "Default Policy"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def build_plan(
    config: ZapConfig, target: Target, job: JobContext, report_file: str
) -> dict[str, Any]:
    url = context_url(target)
    minutes = phase_minutes(config, job.deadline_seconds)
    jobs: list[dict[str, Any]] = [
        {"type": "passiveScan-config", "parameters": {"scanOnlyInScope": True}},
        {
            "type": "spider",
            "parameters": {
                "context": CONTEXT,
                "url": url,
                "maxDuration": minutes["spider_minutes"],
            },
        },
    ]
    if "ajax_spider_minutes" in minutes:
        jobs.append(
            {
                "type": "spiderAjax",
                "parameters": {
                    "context": CONTEXT,
                    "url": url,
                    "maxDuration": minutes["ajax_spider_minutes"],
                    "inScopeOnly": True,
                },
            }
        )
    jobs.append(
        {"type": "passiveScan-wait", "parameters": {"maxDuration": minutes["passive_wait_minutes"]}}
    )
    if "active_scan_minutes" in minutes:
        jobs.append(
            {
                "type": "activeScan",
                "parameters": {
                    "context": CONTEXT,
                    "policy": config.active_scan_policy or _DEFAULT_POLICY,
                    "maxScanDurationInMins": minutes["active_scan_minutes"],
                },
            }
        )
    jobs.append(
        {
            "type": "report",
            "parameters": {
                "template": REPORT_TEMPLATE,
                "reportDir": str(job.workdir),
                "reportFile": report_file,
                "reportTitle": f"jetscan: {target.value}",
            },
        }
    )
    return {
        "env": {
            "contexts": [{"name": CONTEXT, "urls": [url], "includePaths": [re.escape(url) + ".*"]}],
            "parameters": {"failOnError": False, "failOnWarning": False, "progressToStdout": True},
        },
        "jobs": jobs,
    }


def phase_minutes(config: ZapConfig, deadline_seconds: int | None) -> dict[str, int]:
    """Each running phase's limit in minutes, keyed by its config option (see the module)."""
    phases = config.phases()
    wanted = sum(minutes for _, minutes in phases)
    if deadline_seconds is None:
        return dict(phases)
    budget = max(0, (deadline_seconds - OVERHEAD_SECONDS) // 60)
    if wanted <= budget:
        return dict(phases)
    return {field: max(1, minutes * budget // wanted) for field, minutes in phases}


def context_url(target: Target) -> str:
    """The target URL as ZAP's context wants it: without the scheme's default port.

    ZAP and browsers drop a default port from the URLs they request, so a context URL that
    spells one (`http://example.com:80/`) would match nothing ZAP finds.
    """
    scheme, _, rest = target.value.partition("://")
    authority, _, path = rest.partition("/")
    if target.port is not None and target.port == _DEFAULT_PORTS.get(scheme):
        authority = authority.rpartition(":")[0]
    return f"{scheme}://{authority}/{path}"
