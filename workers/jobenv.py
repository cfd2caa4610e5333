"""The scan job's env contract, read and checked on the job's side. Pure.

`contracts.jobs` names the variables and builds them from a `StartScan` for the launcher;
this module trusts nothing it is handed and validates every variable again here.

| variable | meaning |
|---|---|
| `JETSCAN_SCAN_ID` | required; one subject token (letters, digits, `_`, `-`) |
| `JETSCAN_TOOL` | required; a tool in the `scanners` registry |
| `JETSCAN_TARGET` | required; a target of a kind the tool scans (normalised when parsed) |
| `JETSCAN_CONFIG` | the tool's config as a JSON object; default `{}` |
| `JETSCAN_NATS_URL` | required; `nats://`, `tls://`, `ws://` or `wss://` |
| `JETSCAN_NATS_CREDS` | path to a NATS `.creds` file; default none |
| `JETSCAN_DEADLINE_SECONDS` | 1 to the tool's maximum; default the tool's default deadline |
| `JETSCAN_WORKDIR` | absolute path of a writable directory; default the system temp dir |
| `JETSCAN_PROGRAMS` | `name=/path,...`: where the tool's external programs are; default PATH |
| `JETSCAN_SCOPE` | the deployment's scope (domains, CIDRs), for tools that discover names |
| `JETSCAN_CONSOLE_MAX_BYTES` | console text the job may publish (64 KiB-1 TiB); default 64 MiB |
| `JETSCAN_TRACEPARENT` | W3C trace context of the launch, parent of the job's span; default none |
| `OTEL_EXPORTER_OTLP_ENDPOINT` | OTLP/HTTP base URL: the job exports its spans there; default off |
| `JETSCAN_LOG_FORMAT` | `text` (default) or `json`, as for the other roles |
| `JETSCAN_RESOLVERS` | `IP[:PORT],...`: nameservers to check the target's name with |
| `JETSCAN_ATTEMPT` | the job's attempt, 1-10 (more than 1 after jetscan lost a job); default 1 |
| `JETSCAN_CONSOLE_AFTER` | the last console seq of earlier attempts: this one continues after it |

The scanner runs in a fresh directory made inside `JETSCAN_WORKDIR` and removed at the end,
and sees the job's environment minus every `JETSCAN_*` variable and the OTLP endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from contracts import subjects
from contracts.jobs import (
    ATTEMPT,
    CONFIG,
    CONSOLE_AFTER,
    CONSOLE_MAX_BYTES,
    DEADLINE_SECONDS,
    DEFAULT_CONSOLE_MAX_BYTES,
    LOG_FORMAT,
    NATS_CREDS,
    NATS_URL,
    OTLP_ENDPOINT,
    PREFIX,
    PROGRAMS,
    RESOLVERS,
    SCAN_ID,
    SCOPE,
    TARGET,
    TOOL,
    TRACEPARENT,
    WORKDIR,
    format_programs,
)
from contracts.settings import LOG_FORMATS, SettingsError
from contracts.settings import programs as parse_programs
from scanners import TOOLS, ToolSpec, decode_config
from scanners.dns.config import nameserver
from scanners.errors import ConfigError, TargetError
from scanners.scope import Scope
from scanners.targets import Target, parse_target

_NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
# version-trace_id-parent_id-flags; an all-zero id is invalid.
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


class JobEnvError(Exception):
    """A job variable is missing or holds a value the job cannot use."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(variable, reason)
        self.variable = variable
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.variable}: {self.reason}"


class JobEnv(msgspec.Struct, frozen=True, kw_only=True):
    """A validated job environment. `config` is the tool's config Struct."""

    scan_id: str
    tool: str
    target: Target
    config: msgspec.Struct
    nats_url: str
    deadline_seconds: int
    nats_creds: str = ""
    workdir: str = ""
    programs: dict[str, str] = {}
    scope: str = ""
    console_max_bytes: int = DEFAULT_CONSOLE_MAX_BYTES
    traceparent: str = ""
    otlp_endpoint: str = ""
    log_format: str = "text"
    resolvers: tuple[str, ...] = ()
    attempt: int = 1
    console_after: int = 0

    @property
    def spec(self) -> ToolSpec[Any]:
        return TOOLS[self.tool]


def parse(environ: Mapping[str, str]) -> JobEnv:
    """The job env from `environ`; raise `JobEnvError` naming the first bad variable."""
    scan_id = _required(environ, SCAN_ID)
    try:
        subjects.token(scan_id)
    except ValueError:
        raise JobEnvError(
            SCAN_ID, f"{scan_id!r} is not 1-128 letters, digits, '_' or '-'"
        ) from None
    tool = _required(environ, TOOL)
    spec = TOOLS.get(tool)
    if spec is None:
        raise JobEnvError(TOOL, f"unknown tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    return JobEnv(
        scan_id=scan_id,
        tool=tool,
        target=_target(_required(environ, TARGET), spec),
        config=_config(environ.get(CONFIG, "{}"), tool),
        nats_url=_nats_url(_required(environ, NATS_URL)),
        nats_creds=environ.get(NATS_CREDS, ""),
        deadline_seconds=_deadline(environ.get(DEADLINE_SECONDS), spec),
        workdir=_workdir(environ.get(WORKDIR, "")),
        programs=_programs(environ.get(PROGRAMS, "")),
        scope=_scope(environ.get(SCOPE, "")),
        console_max_bytes=_console_max_bytes(environ.get(CONSOLE_MAX_BYTES, "")),
        traceparent=_traceparent(environ.get(TRACEPARENT, "")),
        otlp_endpoint=_otlp_endpoint(environ.get(OTLP_ENDPOINT, "")),
        log_format=_log_format(environ.get(LOG_FORMAT, "text")),
        resolvers=_resolvers(environ.get(RESOLVERS, "")),
        attempt=_count(environ, ATTEMPT, 1, 1, 10),
        console_after=_count(environ, CONSOLE_AFTER, 0, 0, 1 << 62),
    )


def to_environ(env: JobEnv) -> dict[str, str]:
    """The variables that `parse` turns back into `env`; optional ones only when set."""
    environ = {
        SCAN_ID: env.scan_id,
        TOOL: env.tool,
        TARGET: env.target.value,
        CONFIG: msgspec.json.encode(env.config).decode(),
        NATS_URL: env.nats_url,
        DEADLINE_SECONDS: str(env.deadline_seconds),
    }
    if env.nats_creds:
        environ[NATS_CREDS] = env.nats_creds
    if env.workdir:
        environ[WORKDIR] = env.workdir
    if env.programs:
        environ[PROGRAMS] = format_programs(env.programs)
    if env.scope:
        environ[SCOPE] = env.scope
    if env.console_max_bytes != DEFAULT_CONSOLE_MAX_BYTES:
        environ[CONSOLE_MAX_BYTES] = str(env.console_max_bytes)
    if env.traceparent:
        environ[TRACEPARENT] = env.traceparent
    if env.otlp_endpoint:
        environ[OTLP_ENDPOINT] = env.otlp_endpoint
    if env.log_format != "text":
        environ[LOG_FORMAT] = env.log_format
    if env.resolvers:
        environ[RESOLVERS] = ",".join(env.resolvers)
    if env.attempt > 1:
        environ[ATTEMPT] = str(env.attempt)
        environ[CONSOLE_AFTER] = str(env.console_after)
    return environ


def scanner_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The scanner's environment: the job's, without the bus address and credentials."""
    return {k: v for k, v in environ.items() if not k.startswith(PREFIX) and k != OTLP_ENDPOINT}


def _count(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = environ.get(name, "")
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise JobEnvError(name, f"expected a whole number from {low} to {high}, got {text!r}")
    return int(text)


def _console_max_bytes(text: str) -> int:
    if not text:
        return DEFAULT_CONSOLE_MAX_BYTES
    if not text.isascii() or not text.isdigit() or not 64 << 10 <= int(text) <= 1 << 40:
        raise JobEnvError(
            CONSOLE_MAX_BYTES, f"expected whole bytes from {64 << 10} to {1 << 40}, got {text!r}"
        )
    return int(text)


def _required(environ: Mapping[str, str], variable: str) -> str:
    value = environ.get(variable, "")
    if not value:
        raise JobEnvError(variable, "is not set")
    return value


def _target(text: str, spec: ToolSpec[Any]) -> Target:
    try:
        return parse_target(text, allowed_kinds=spec.target_kinds)
    except TargetError as exc:
        raise JobEnvError(TARGET, exc.reason) from exc


def _config(text: str, tool: str) -> msgspec.Struct:
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise JobEnvError(CONFIG, f"is not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise JobEnvError(CONFIG, "must be a JSON object")
    try:
        return decode_config(tool, raw)
    except ConfigError as exc:
        raise JobEnvError(CONFIG, f"{exc.field}: {exc.reason}") from exc


def _nats_url(text: str) -> str:
    if not text.startswith(_NATS_SCHEMES) or len(text) == text.find("://") + 3:
        raise JobEnvError(
            NATS_URL, f"expected a nats://, tls://, ws:// or wss:// URL, got {text!r}"
        )
    return text


def _deadline(text: str | None, spec: ToolSpec[Any]) -> int:
    if text is None:
        return spec.default_deadline_seconds
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= spec.max_deadline_seconds:
        raise JobEnvError(
            DEADLINE_SECONDS,
            f"expected whole seconds from 1 to {spec.max_deadline_seconds}, got {text!r}",
        )
    return int(text)


def _workdir(text: str) -> str:
    if text and not text.startswith("/"):
        raise JobEnvError(WORKDIR, f"must be an absolute path, got {text!r}")
    return text


def _programs(text: str) -> dict[str, str]:
    try:
        return parse_programs(PROGRAMS, text)
    except SettingsError as exc:
        raise JobEnvError(PROGRAMS, exc.reason) from exc


def _resolvers(text: str) -> tuple[str, ...]:
    found = tuple(filter(None, (part.strip() for part in text.split(","))))
    for item in found:
        try:
            nameserver(item, RESOLVERS)
        except ConfigError as exc:
            raise JobEnvError(RESOLVERS, exc.reason) from exc
    return found


def _scope(text: str) -> str:
    try:
        Scope.parse(text)
    except ValueError as exc:
        raise JobEnvError(SCOPE, str(exc)) from exc
    return text


def _traceparent(text: str) -> str:
    if text and not _TRACEPARENT.match(text):
        raise JobEnvError(
            TRACEPARENT, f"expected W3C 00-<trace id>-<span id>-<flags>, got {text!r}"
        )
    return text


def _otlp_endpoint(text: str) -> str:
    if text and not text.startswith(("http://", "https://")):
        raise JobEnvError(OTLP_ENDPOINT, f"expected an http:// or https:// URL, got {text!r}")
    return text


def _log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise JobEnvError(LOG_FORMAT, f"expected one of {', '.join(LOG_FORMATS)}, got {text!r}")
    return text
