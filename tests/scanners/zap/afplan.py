"""A checker for ZAP Automation Framework plans, after the Framework's documented structure.

ZAP cannot run here, so this is what the tests (and the `zap.sh` stand-in) hold a plan to:
the keys and value types of the environment and of each job jetscan uses, as documented on
https://www.zaproxy.org/docs/desktop/addons/automation-framework/ and the pages of the
spider, AJAX spider, passive scanner, active scan and report jobs. On top, jetscan's own
rules: every time limit is set and positive (0 is unlimited to ZAP), the jobs come in the
order the scan needs, and the report is traditional JSON in an existing directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ENV_PARAMETERS = {"failOnError", "failOnWarning", "continueOnFailure", "progressToStdout"}
CONTEXT_KEYS = {
    "name",
    "urls",
    "includePaths",
    "excludePaths",
    "authentication",
    "sessionManagement",
    "technology",
    "structure",
    "users",
}
JOB_KEYS = {
    "type",
    "name",
    "parameters",
    "enabled",
    "alwaysRun",
    "tests",
    "rules",
    "policyDefinition",
    "risks",
    "confidences",
    "sections",
    "sites",
}
JOB_PARAMETERS = {
    "passiveScan-config": {
        "maxAlertsPerRule",
        "scanOnlyInScope",
        "maxBodySizeInBytesToScan",
        "enableTags",
        "disableAllRules",
    },
    "spider": {
        "context",
        "user",
        "url",
        "maxDuration",
        "maxDepth",
        "maxChildren",
        "acceptCookies",
        "handleODataParametersVisited",
        "handleParameters",
        "maxParseSizeBytes",
        "parseComments",
        "parseGit",
        "parseRobotsTxt",
        "parseSitemapXml",
        "parseSVNEntries",
        "postForm",
        "processForm",
        "requestWaitTime",
        "sendRefererHeader",
        "threadCount",
        "userAgent",
    },
    "spiderAjax": {
        "context",
        "user",
        "url",
        "maxDuration",
        "maxCrawlDepth",
        "numberOfBrowsers",
        "runOnlyIfModern",
        "inScopeOnly",
        "browserId",
        "clickDefaultElems",
        "clickElemsOnce",
        "eventWait",
        "maxCrawlStates",
        "randomInputs",
        "reloadWait",
    },
    "passiveScan-wait": {"maxDuration"},
    "activeScan": {
        "context",
        "user",
        "policy",
        "maxRuleDurationInMins",
        "maxScanDurationInMins",
        "addQueryParam",
        "defaultPolicy",
        "delayInMs",
        "handleAntiCSRFTokens",
        "injectPluginIdInHeader",
        "scanHeadersAllRequests",
        "threadPerHost",
        "maxAlertsPerRule",
    },
    "report": {
        "template",
        "theme",
        "reportDir",
        "reportFile",
        "reportTitle",
        "reportDescription",
        "displayReport",
    },
}
BOOLEANS = {"scanOnlyInScope", "inScopeOnly", "displayReport", "runOnlyIfModern"}
# The limit each job must carry, in minutes.
LIMITS = {
    "spider": "maxDuration",
    "spiderAjax": "maxDuration",
    "passiveScan-wait": "maxDuration",
    "activeScan": "maxScanDurationInMins",
}
ORDER = ["passiveScan-config", "spider", "spiderAjax", "passiveScan-wait", "activeScan", "report"]


def check_plan(plan: Any, *, running: bool = True) -> list[str]:
    """Every way `plan` departs from the documented structure; empty when it is valid.

    `running`: the plan is about to run, so the report directory must exist.
    """
    if not isinstance(plan, dict) or set(plan) != {"env", "jobs"}:
        return [f"a plan is a mapping of env and jobs, got {plan!r:.80}"]
    errors, contexts = _check_env(plan["env"])
    jobs = plan["jobs"]
    if not isinstance(jobs, list) or not jobs:
        return [*errors, "jobs: a non-empty list"]
    for i, job in enumerate(jobs):
        errors += _check_job(f"jobs[{i}]", job, contexts, running)
    types = [job.get("type") for job in jobs if isinstance(job, dict)]
    if types != sorted(types, key=lambda t: ORDER.index(t) if t in ORDER else -1):
        errors.append(f"jobs run in the order {types}, not {ORDER}")
    if "spider" not in types or "passiveScan-wait" not in types or types[-1:] != ["report"]:
        errors.append("a scan spiders, waits for the passive scanner and ends with its report")
    return errors


def plan_minutes(plan: dict[str, Any]) -> int:
    """The time limits of a valid plan's jobs, added up."""
    return sum(
        job["parameters"][LIMITS[job["type"]]] for job in plan["jobs"] if job["type"] in LIMITS
    )


def _check_env(env: Any) -> tuple[list[str], set[str]]:
    if not isinstance(env, dict):
        return ["env: a mapping"], set()
    errors = [
        f"env.{key}: not an environment key"
        for key in env
        if key not in {"contexts", "parameters", "vars", "proxy"}
    ]
    contexts: set[str] = set()
    if not isinstance(env.get("contexts"), list) or not env["contexts"]:
        return [*errors, "env.contexts: a non-empty list"], contexts
    for i, context in enumerate(env["contexts"]):
        where = f"env.contexts[{i}]"
        if not isinstance(context, dict):
            errors.append(f"{where}: a mapping")
            continue
        errors += [
            f"{where}.{key}: not a context key" for key in context if key not in CONTEXT_KEYS
        ]
        name = context.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"{where}.name: a non-empty string")
        else:
            contexts.add(name)
        urls = context.get("urls")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            errors.append(f"{where}.urls: a non-empty list of URLs")
            continue
        errors += [
            f"{where}.urls: {u!r} is not http(s)"
            for u in urls
            if not re.match(r"https?://[^/]+/", u)
        ]
        patterns = context.get("includePaths", [])
        try:
            compiled = [re.compile(p) for p in patterns]
        except (TypeError, re.error) as exc:
            errors.append(f"{where}.includePaths: {exc}")
            continue
        if compiled:
            errors += [
                f"{where}: {u!r} matches no includePath"
                for u in urls
                if not any(c.fullmatch(u) for c in compiled)
            ]
    parameters = env.get("parameters", {})
    if not isinstance(parameters, dict):
        errors.append("env.parameters: a mapping")
    else:
        for key, value in parameters.items():
            if key not in ENV_PARAMETERS:
                errors.append(f"env.parameters.{key}: not an environment parameter")
            elif not isinstance(value, bool):
                errors.append(f"env.parameters.{key}: a boolean")
    return errors, contexts


def _check_job(where: str, job: Any, contexts: set[str], running: bool) -> list[str]:
    if not isinstance(job, dict):
        return [f"{where}: a mapping"]
    kind = job.get("type")
    if kind not in JOB_PARAMETERS:
        return [f"{where}.type: {kind!r} is not a job jetscan uses"]
    errors = [f"{where}.{key}: not a job key" for key in job if key not in JOB_KEYS]
    parameters = job.get("parameters", {})
    if not isinstance(parameters, dict):
        return [*errors, f"{where}.parameters: a mapping"]
    for key, value in parameters.items():
        if key not in JOB_PARAMETERS[kind]:
            errors.append(f"{where}.parameters.{key}: not a {kind} parameter")
        elif key in BOOLEANS and not isinstance(value, bool):
            errors.append(f"{where}.parameters.{key}: a boolean")
    if "context" in parameters and parameters["context"] not in contexts:
        errors.append(f"{where}.parameters.context: {parameters['context']!r} is not defined")
    if kind in LIMITS:
        limit = parameters.get(LIMITS[kind])
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            errors.append(f"{where}.parameters.{LIMITS[kind]}: whole minutes, at least 1")
    if kind == "report":
        errors += _check_report(where, parameters, running)
    return errors


def _check_report(where: str, parameters: dict[str, Any], running: bool) -> list[str]:
    errors = []
    if parameters.get("template") != "traditional-json":
        errors.append(f"{where}.parameters.template: jetscan reads traditional-json")
    directory = parameters.get("reportDir")
    if not isinstance(directory, str) or not Path(directory).is_absolute():
        errors.append(f"{where}.parameters.reportDir: an absolute path")
    elif running and not Path(directory).is_dir():
        errors.append(f"{where}.parameters.reportDir: {directory} does not exist")
    name = parameters.get("reportFile")
    if not isinstance(name, str) or not name or "/" in name:
        errors.append(f"{where}.parameters.reportFile: a file name")
    return errors
