"""The scan job's env contract: the variables a launcher sets and the job runtime reads.

One contract for both executors: the Kubernetes executor puts these variables on the Job's
container, the local executor on a subprocess, so one code path runs in both. The job
(`workers.jobenv`) validates them again: it trusts nothing it is handed.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from contracts.scans import StartScan

SCAN_ID = "JETSCAN_SCAN_ID"
TOOL = "JETSCAN_TOOL"
TARGET = "JETSCAN_TARGET"
CONFIG = "JETSCAN_CONFIG"
NATS_URL = "JETSCAN_NATS_URL"
NATS_CREDS = "JETSCAN_NATS_CREDS"
DEADLINE_SECONDS = "JETSCAN_DEADLINE_SECONDS"
WORKDIR = "JETSCAN_WORKDIR"
PROGRAMS = "JETSCAN_PROGRAMS"
SCOPE = "JETSCAN_SCOPE"
CONSOLE_MAX_BYTES = "JETSCAN_CONSOLE_MAX_BYTES"
DEFAULT_CONSOLE_MAX_BYTES = 64 * 1024 * 1024
# The launch's span, parent of the job's (`contracts.tracing`); set only with tracing on.
TRACEPARENT = "JETSCAN_TRACEPARENT"
LOG_FORMAT = "JETSCAN_LOG_FORMAT"
# The standard OpenTelemetry variable, passed on as is.
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
RESOLVERS = "JETSCAN_RESOLVERS"
# The job's attempt (1 unless jetscan lost an earlier job of the scan), and the last console
# `seq` earlier attempts published: a retry's console continues after it.
ATTEMPT = "JETSCAN_ATTEMPT"
CONSOLE_AFTER = "JETSCAN_CONSOLE_AFTER"
PREFIX = "JETSCAN_"


def job_environ(
    cmd: StartScan,
    nats_url: str,
    *,
    nats_creds: str = "",
    workdir: str = "",
    programs: Mapping[str, str] | None = None,
    scope: str = "",
    console_max_bytes: int = 0,
    traceparent: str = "",
    otlp_endpoint: str = "",
    log_format: str = "",
    attempt: int = 1,
    console_after: int = 0,
) -> dict[str, str]:
    """The variables of the job that runs `cmd`; optional ones only when set."""
    environ = {
        SCAN_ID: cmd.scan_id,
        TOOL: cmd.tool,
        TARGET: cmd.target,
        CONFIG: msgspec.json.encode(cmd.config).decode(),
        NATS_URL: nats_url,
        DEADLINE_SECONDS: str(cmd.deadline_seconds),
    }
    if nats_creds:
        environ[NATS_CREDS] = nats_creds
    if workdir:
        environ[WORKDIR] = workdir
    if programs:
        environ[PROGRAMS] = format_programs(programs)
    if scope:
        environ[SCOPE] = scope
    if console_max_bytes:
        environ[CONSOLE_MAX_BYTES] = str(console_max_bytes)
    if traceparent and otlp_endpoint:
        environ[TRACEPARENT] = traceparent
    if otlp_endpoint:
        environ[OTLP_ENDPOINT] = otlp_endpoint
    if log_format and log_format != "text":  # text is the job's default
        environ[LOG_FORMAT] = log_format
    if attempt > 1:
        environ[ATTEMPT] = str(attempt)
        environ[CONSOLE_AFTER] = str(console_after)
    return environ


def format_programs(programs: Mapping[str, str]) -> str:
    """`name=/path,...`: the same form as the `JETSCAN_PROGRAMS` setting."""
    return ",".join(f"{name}={path}" for name, path in sorted(programs.items()))
