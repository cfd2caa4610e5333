"""Tool options from a command line's `--set KEY=VALUE` pairs (`scan start`, `schedule`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import msgspec

from scanners import TOOLS


class UsageError(Exception):
    """Arguments argparse accepted but that cannot work together (a `--set` key given twice)."""


def config_from_sets(tool: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Tool options from `--set` pairs: JSON values where they parse, text otherwise.

    Options the tool types as text keep the text as given: `--set ports=22` means the
    string "22", not the number JSON would read.
    """
    text_fields = _text_fields(tool)
    config: dict[str, Any] = {}
    for key, raw in pairs:
        if key in config:
            raise UsageError(f"--set {key}: given more than once")
        if key in text_fields:
            config[key] = raw
            continue
        try:
            config[key] = json.loads(raw, parse_constant=_no_constants)
        except ValueError:
            config[key] = raw
    return config


def _text_fields(tool: str) -> frozenset[str]:
    info = msgspec.inspect.type_info(TOOLS[tool].config_type)
    assert isinstance(info, msgspec.inspect.StructType)

    def is_text(t: msgspec.inspect.Type) -> bool:
        if isinstance(t, msgspec.inspect.UnionType):
            return any(is_text(member) for member in t.types)
        return isinstance(t, msgspec.inspect.StrType)

    return frozenset(f.encode_name for f in info.fields if is_text(f.type))


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON a Struct can carry: keep such values as text.
    raise ValueError(name)
