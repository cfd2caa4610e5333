"""StartScan validation: tool, target, config, deadline and scope, each error naming its field.

Pure and shared: the edge answers a StartScan RPC with it, and every other producer of a
start command (the scheduler at each fire) runs the very same checks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import msgspec

from scanners import TOOLS, decode_config
from scanners.errors import ConfigError, OutOfScope, RequestError, TargetError
from scanners.scope import Scope, in_scope
from scanners.targets import Target, parse_target


@dataclass(frozen=True)
class ValidScan:
    tool: str
    target: Target
    config: dict[str, Any]
    deadline_seconds: int


def validate_start(
    tool: str, target: str, config: dict[str, Any], deadline_seconds: int, scope: Scope
) -> ValidScan:
    """The canonical scan, or RequestError/TargetError/ConfigError (bad input) or OutOfScope."""
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
    return ValidScan(tool, parsed, options_set(typed), deadline_seconds)


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
