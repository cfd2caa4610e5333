"""Every NATS subject jetscan uses is spelled here and nowhere else."""

from __future__ import annotations

import re
from typing import Final

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")

SCAN_COMMANDS: Final = "cmd.scan.*.*"
REPORT_COMMANDS: Final = "cmd.report.*.generate"
SCHEDULE_COMMANDS: Final = "cmd.schedule.*.*"
FINDING_COMMANDS: Final = "cmd.finding.*.*"
COMMANDS: Final = "cmd.>"
SCAN_EVENTS: Final = "evt.scan.*.*"
REPORT_EVENTS: Final = "evt.report.*.*"
EVENTS: Final = "evt.>"
AUDIT: Final = "evt.audit.>"
SCAN_OUTPUT: Final = "scan.output.*"
SCAN_RESULTS: Final = "scan.results.>"
QUERIES: Final = "query.>"
SERVICE_PING: Final = "$SRV.PING"


def token(value: str) -> str:
    """Return `value` if it is safe as one subject token, else raise ValueError.

    Ids come from clients; a `.`, `*` or `>` in one would let it address other subjects.
    """
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a valid subject token: {value!r}")
    return value


def scan_start(scan_id: str) -> str:
    return f"cmd.scan.{token(scan_id)}.start"


def scan_cancel(scan_id: str) -> str:
    return f"cmd.scan.{token(scan_id)}.cancel"


def report_generate(report_id: str) -> str:
    return f"cmd.report.{token(report_id)}.generate"


def schedule_upsert(schedule_id: str) -> str:
    return f"cmd.schedule.{token(schedule_id)}.upsert"


def schedule_delete(schedule_id: str) -> str:
    return f"cmd.schedule.{token(schedule_id)}.delete"


def finding_triage(finding_id: str) -> str:
    return f"cmd.finding.{token(finding_id)}.triage"


def schedule_run(schedule_id: str) -> str:
    return f"cmd.schedule.{token(schedule_id)}.run"


def scan_event(scan_id: str, status: str) -> str:
    return f"evt.scan.{token(scan_id)}.{token(status)}"


def scan_events(scan_id: str) -> str:
    return f"evt.scan.{token(scan_id)}.*"


def report_event(report_id: str, state: str) -> str:
    return f"evt.report.{token(report_id)}.{token(state)}"


def audit(source: str, action: str) -> str:
    """Where a mutation's audit record goes: `evt.audit.grpc.StartScan`, ...cli.token-revoke."""
    return f"evt.audit.{token(source)}.{token(action)}"


def audit_from(source: str) -> str:
    return f"evt.audit.{token(source)}.*"


def scan_output(scan_id: str) -> str:
    return f"scan.output.{token(scan_id)}"


def scan_results(tool: str) -> str:
    """Where results went before they named their scan; still consumed, no longer published."""
    return f"scan.results.{token(tool)}"


def scan_result(tool: str, scan_id: str) -> str:
    """The result of one scan: the scan id in the subject lets a job's credentials name it."""
    return f"scan.results.{token(tool)}.{token(scan_id)}"


def role_inbox(role: str) -> str:
    """The reply-subject prefix of a role's connections: only that role may read it."""
    return f"_INBOX.role.{token(role)}"


def scan_inbox(scan_id: str) -> str:
    """The reply-subject prefix of a scan job's connection."""
    return f"_INBOX.scan.{token(scan_id)}"


def query(entity: str, verb: str) -> str:
    return f"query.{token(entity)}.{token(verb)}"


def service_ping(service_name: str) -> str:
    return f"{SERVICE_PING}.{token(service_name)}"


def msg_id(entity: str, key: str, event: str) -> str:
    """The `Nats-Msg-Id` of a retryable publish: a pure function of (entity, event).

    JetStream drops a second publish with the same id inside the duplicate window, so a
    retried publish after a lost ack cannot create a second command or event.
    """
    return f"{entity}:{key}:{event}"


def matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a trailing `>` one or more."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, p in enumerate(pat):
        if p == ">":
            return len(sub) > i
        if i >= len(sub) or (p != "*" and p != sub[i]):
            return False
    return len(pat) == len(sub)


def overlaps(a: str, b: str) -> bool:
    """Whether some subject matches both wildcard patterns `a` and `b`."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" or y == ">":
            return (x is not None) and (y is not None)
        if x is None or y is None:
            return False
        if "*" not in (x, y) and x != y:
            return False
    return True
