"""The scanner registry: per tool, its config type, argv builder, parser and limits.

Everything here is pure. The worker runtime does the I/O around it: decode the config, build
the argv, run it in a work directory, then parse `output_file` from that directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

import msgspec

from contracts.coverage import Coverage
from scanners.context import JobContext, no_files
from scanners.dns import command as dns_command
from scanners.dns import coverage as dns_coverage
from scanners.dns import parse as dns_parse
from scanners.dns.config import DnsConfig
from scanners.errors import ConfigError
from scanners.nmap import command as nmap_command
from scanners.nmap import coverage as nmap_coverage
from scanners.nmap import parse as nmap_parse
from scanners.nmap.config import NmapConfig
from scanners.output import Piece, ToolOutput
from scanners.sslyze import command as sslyze_command
from scanners.sslyze import coverage as sslyze_coverage
from scanners.sslyze import parse as sslyze_parse
from scanners.sslyze.config import SslyzeConfig
from scanners.targets import Target, TargetKind
from scanners.zap import command as zap_command
from scanners.zap import coverage as zap_coverage
from scanners.zap import parse as zap_parse
from scanners.zap.config import MAX_DEADLINE_SECONDS as ZAP_MAX_DEADLINE_SECONDS
from scanners.zap.config import ZapConfig

ConfigT = TypeVar("ConfigT", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class ToolSpec(Generic[ConfigT]):
    """How to drive one tool.

    `output_file` is the file, relative to the job's work directory, where the tool writes the
    output `parse`/`parse_stream` read; console output goes to stdout. `parse_stream` reads
    that file without loading it whole. `prepare` names files (relative path -> content) the
    job writes into the work directory before running the argv, such as a ZAP plan.
    `coverage` says which findings of the tool on the target a complete scan looked for (see
    `contracts.coverage`); `unreached` why a run reached nothing at all ("" when it reached
    something), which fails the scan instead of passing it off as all-clear.
    """

    name: str
    config_type: type[ConfigT]
    build_argv: Callable[[ConfigT, Target, JobContext], list[str]]
    parse: Callable[[bytes], ToolOutput]
    parse_stream: Callable[[IO[bytes]], ToolOutput]
    output_file: str
    accepted_exit_codes: frozenset[int]
    default_deadline_seconds: int
    max_deadline_seconds: int
    target_kinds: frozenset[TargetKind]
    prepare: Callable[[ConfigT, Target, JobContext], dict[str, bytes]] = no_files
    # For outputs that can outgrow memory: the parse as `Piece`s of the tool data's
    # `pieces_field` collection, ended by the rest as a `ToolOutput`.
    iter_pieces: Callable[[IO[bytes]], Iterator[Piece | ToolOutput]] | None = None
    pieces_field: str = ""
    coverage: Callable[[ConfigT, Target, Any], Coverage] = lambda config, target, data: Coverage()
    unreached: Callable[[Any], str] = lambda data: ""
    # The scanner's version as the tool data names it, "" when it does not.
    version: Callable[[Any], str] = lambda data: ""


TOOLS: dict[str, ToolSpec[Any]] = {
    "nmap": ToolSpec(
        name="nmap",
        config_type=NmapConfig,
        build_argv=nmap_command.build_argv,
        parse=nmap_parse.parse,
        parse_stream=nmap_parse.parse_stream,
        iter_pieces=nmap_parse.iter_pieces,
        pieces_field="hosts",
        output_file=nmap_command.XML_OUTPUT,
        # nmap exits 0 whether or not hosts were up; 1 is a real error, 130 an interrupt.
        accepted_exit_codes=frozenset({0}),
        default_deadline_seconds=3600,
        # Matches the longest host_timeout_seconds a config may ask for.
        max_deadline_seconds=86400,
        target_kinds=nmap_command.TARGET_KINDS,
        coverage=nmap_coverage.coverage,
        unreached=nmap_coverage.unreached,
        version=lambda data: data.version,
    ),
    "zap": ToolSpec(
        name="zap",
        config_type=ZapConfig,
        build_argv=zap_command.build_argv,
        parse=zap_parse.parse,
        parse_stream=zap_parse.parse_stream,
        output_file=zap_command.REPORT_FILE,
        # The Automation Framework's exit codes: 0 clean, 2 warnings only (the report is
        # whole), 1 a job failed (the report, if written, is kept as a partial result).
        accepted_exit_codes=frozenset({0, 2}),
        default_deadline_seconds=3600,
        # The config's phases are validated to fit this, with ZAP's start-up and report.
        max_deadline_seconds=ZAP_MAX_DEADLINE_SECONDS,
        target_kinds=zap_command.TARGET_KINDS,
        coverage=zap_coverage.coverage,
        unreached=zap_coverage.unreached,
        prepare=zap_command.prepare,
        version=lambda data: data.version,
    ),
    "dns": ToolSpec(
        name="dns",
        config_type=DnsConfig,
        build_argv=dns_command.build_argv,
        parse=dns_parse.parse,
        parse_stream=dns_parse.parse_stream,
        output_file=dns_command.OUTPUT,
        # The recon runner exits 1 when subfinder or the resolver failed (what was found is
        # still in its output) and 2 on unusable arguments.
        accepted_exit_codes=frozenset({0}),
        default_deadline_seconds=1800,
        # subfinder alone may take max_enumeration_minutes (up to 12 h), then resolving.
        max_deadline_seconds=86400,
        target_kinds=dns_command.TARGET_KINDS,
        coverage=dns_coverage.coverage,
        unreached=dns_coverage.unreached,
        version=lambda data: ", ".join(data.versions),
    ),
    "sslyze": ToolSpec(
        name="sslyze",
        config_type=SslyzeConfig,
        build_argv=sslyze_command.build_argv,
        parse=sslyze_parse.parse,
        parse_stream=sslyze_parse.parse_stream,
        output_file=sslyze_command.JSON_OUTPUT,
        # With the Mozilla profile check disabled (see build_argv) sslyze exits 0 whenever it
        # ran, reachable servers or not; 1 is a crash (a Python traceback).
        accepted_exit_codes=frozenset({0}),
        # A full scan of one server takes seconds to a couple of minutes (ROBOT over a slow
        # link is the long pole); a stuck handshake is cut off well before an hour.
        default_deadline_seconds=600,
        max_deadline_seconds=3600,
        target_kinds=sslyze_command.TARGET_KINDS,
        coverage=sslyze_coverage.coverage,
        unreached=sslyze_coverage.unreached,
        version=lambda data: data.version,
    ),
}

# What `jetscan parse NAME FILE` reads: every tool's own output file, plus the files of
# programs that run inside a tool (subfinder's `-oJ` and dnsx's `-json` lines, for dns).
PARSERS: dict[str, Callable[[IO[bytes]], ToolOutput]] = {
    **{name: spec.parse_stream for name, spec in TOOLS.items()},
    "subfinder": dns_parse.parse_subfinder_stream,
    "dnsx": dns_parse.parse_dnsx_stream,
}

# msgspec reports where a value failed as a JSONPath suffix: "... - at `$.scripts[0]`".
_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"unknown field `(?P<name>[^`]*)`")


def decode_config(tool: str, raw: dict[str, Any]) -> msgspec.Struct:
    """The tool's config Struct from decoded JSON, or `ConfigError(field, reason)`.

    `field` is "tool" for an unknown tool, the key itself for an unknown key, and the key's
    path (`timing`, `scripts[1]`) for a bad value.
    """
    spec = TOOLS.get(tool)
    if spec is None:
        raise ConfigError("tool", f"unknown tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    if not isinstance(raw, dict):
        raise ConfigError("config", "must be a JSON object")
    try:
        config: msgspec.Struct = msgspec.convert(raw, spec.config_type)
    except msgspec.ValidationError as exc:
        raise _config_error(str(exc)) from exc
    return config


def _config_error(message: str) -> ConfigError:
    at = _AT_PATH.search(message)
    path = at.group("path") if at else ""
    reason = message[: at.start()] if at else message
    if unknown := _UNKNOWN_FIELD.search(reason):
        name = unknown.group("name")
        return ConfigError(f"{path}.{name}" if path else name, "is not a known option")
    return ConfigError(path or "config", reason)
