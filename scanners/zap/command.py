"""ZAP's argv and the plan file it runs. Pure: no process is started and no file written here.

`prepare` hands the job `plan.yaml` (see `scanners.zap.plan`) to write into the work
directory; `build_argv` runs it with `zap.sh -cmd -autorun`, ZAP's inline mode, which exits
when the plan is done: 0 clean, 1 a job reported an error, 2 warnings only.
"""

from __future__ import annotations

from scanners.context import JobContext
from scanners.errors import TargetError
from scanners.targets import Target, TargetKind, parse_target
from scanners.zap.config import ZapConfig
from scanners.zap.plan import build_plan

PLAN_FILE = "plan.yaml"
HOSTS_FILE = "hosts"
REPORT_FILE = "zap-report.json"
TARGET_KINDS = frozenset({TargetKind.URL})


def build_argv(config: ZapConfig, target: Target, job: JobContext) -> list[str]:
    """`zap.sh -cmd -silent -autorun <workdir>/plan.yaml`.

    `-silent` keeps ZAP from any request of its own (update checks, news, telemetry): a scan
    job talks to its target and nothing else. The target reaches ZAP only inside the plan,
    never as an argument.

    A hostname is pinned to the address the job checked: the JVM resolves names from the
    `hosts` file `prepare` writes (`jdk.net.hosts.file`, through `JAVA_TOOL_OPTIONS`, which
    every JVM reads whatever script starts it) instead of asking DNS, so ZAP never resolves
    the name again, and a derived URL on any other name does not resolve at all.
    """
    _recheck(target)
    argv = [job.program("zap.sh"), "-cmd", "-silent", "-autorun", str(job.workdir / PLAN_FILE)]
    if job.pinned:
        hosts = f"-Djdk.net.hosts.file={job.workdir / HOSTS_FILE}"
        argv = ["env", f"JAVA_TOOL_OPTIONS={hosts}", *argv]
    return argv


def prepare(config: ZapConfig, target: Target, job: JobContext) -> dict[str, bytes]:
    # Imported here: the registry imports every tool, and only the ZAP image installs PyYAML.
    import yaml

    checked = _recheck(target)
    plan = build_plan(config, checked, job, REPORT_FILE)
    # safe_dump writes plain YAML (no Python tags) in the plan's own key order.
    text = yaml.safe_dump(plan, sort_keys=False, allow_unicode=False, default_flow_style=False)
    files = {PLAN_FILE: text.encode()}
    if job.pinned:
        address = parse_target(job.pinned, allowed_kinds=frozenset({TargetKind.IP})).value
        files[HOSTS_FILE] = f"{address} {checked.host}\n".encode()
    return files


def _recheck(target: Target) -> Target:
    # A Target decoded from a message never went through `parse_target`.
    checked = parse_target(target.value, allowed_kinds=TARGET_KINDS)
    if checked.value != target.value or checked.kind is not target.kind:
        raise TargetError("target", f"{target.value!r} is not in normalised form")
    return checked
