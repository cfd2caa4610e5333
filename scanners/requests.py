"""StartScan validation: tool, target, config, deadline and scope, each error naming its field.

Pure and shared: the edge answers a StartScan RPC with it, and every other producer of a
start command (the scheduler at each fire) runs the very same checks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import msgspec

from contracts.settings import Settings
from scanners import TOOLS, decode_config
from scanners.errors import ConfigError, OutOfScope, RequestError, TargetError, Unsupported
from scanners.scope import Scope, in_scope
from scanners.targets import Target, parse_target


@dataclass(frozen=True)
class ValidScan:
    tool: str
    target: Target
    config: dict[str, Any]
    deadline_seconds: int


@dataclass(frozen=True)
class Capabilities:
    """What the deployment's executor can run, so a scan it cannot is refused when asked for
    rather than accepted and failed at launch. The edge and the scheduler pass the same."""

    raw_sockets: bool

    @classmethod
    def of(cls, settings: Settings) -> Capabilities:
        # Kubernetes admits a root pod with NET_RAW only where the deployment says so; a
        # local job runs with whatever privileges the launcher has, and nmap says if short.
        return cls(raw_sockets=settings.executor != "kubernetes" or settings.k8s_raw_sockets)


def needs_raw_sockets(tool: str, config: dict[str, Any]) -> bool:
    """Whether a canonical scan sends raw packets (needs CAP_NET_RAW): nmap's syn scans."""
    return tool == "nmap" and config.get("scan_type") == "syn"


def validate_start(
    tool: str,
    target: str,
    config: dict[str, Any],
    deadline_seconds: int,
    scope: Scope,
    *,
    capabilities: Capabilities,
) -> ValidScan:
    """The canonical scan, or RequestError/TargetError/ConfigError (bad input), OutOfScope, or
    Unsupported (valid, but the executor cannot run it)."""
    spec = TOOLS.get(tool)
    if spec is None:
        known = ", ".join(sorted(TOOLS))
        raise RequestError("tool", f"unknown tool {tool!r}; expected one of {known}")
    try:
        parsed = parse_target(target, allowed_kinds=spec.target_kinds)
    except TargetError as exc:
        raise TargetError("target", exc.reason) from None
    try:
        typed = decode_config(tool, config)
    except ConfigError as exc:
        raise ConfigError(f"config.{exc.field}", exc.reason) from None
    if deadline_seconds == 0:
        deadline_seconds = spec.default_deadline_seconds
    elif deadline_seconds > spec.max_deadline_seconds:
        raise RequestError(
            "deadline_seconds",
            f"at most {spec.max_deadline_seconds} for {tool}, got {deadline_seconds}",
        )
    if not in_scope(parsed, scope):
        raise OutOfScope("target", f"{parsed.value!r} is outside the allowed scope (JETSCAN_SCOPE)")
    canonical = options_set(typed)
    if needs_raw_sockets(tool, canonical) and not capabilities.raw_sockets:
        raise Unsupported(
            "config.scan_type",
            "syn scans need raw sockets (root with NET_RAW), which this deployment does not"
            " allow (JETSCAN_K8S_RAW_SOCKETS=false); use scan_type connect",
        )
    return ValidScan(tool, parsed, canonical, deadline_seconds)


def options_set(config: msgspec.Struct) -> dict[str, Any]:
    """The options that differ from their defaults, as JSON data: the canonical config.

    What the caller spelled out at its default value is dropped, so equal requests record
    equal configs; the job fills in the defaults of the version that runs it.
    """
    out: dict[str, Any] = {}
    for field in _fields(type(config)):
        value = getattr(config, field.name)
        default = (
            field.default
            if field.default_factory is msgspec.NODEFAULT
            else (field.default_factory())
        )
        if value != default:
            out[field.encode_name] = msgspec.json.decode(msgspec.json.encode(value))
    return out


@functools.cache
def _fields(config_type: type[msgspec.Struct]) -> tuple[msgspec.structs.FieldInfo, ...]:
    # msgspec.structs.fields evaluates the type annotations on every call (~0.1 ms).
    return msgspec.structs.fields(config_type)
