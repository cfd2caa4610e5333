"""A tool's options as form fields, read from its config type's JSON schema, and a
submitted form back into a config dict (which StartScan then validates as for gRPC).

Pure. Inputs are named `<tool>:<option>` so every tool's fieldset can be on one page (the
script shows the chosen tool's; without it all show and only the chosen tool's count);
a refusal names `config.<option>`, as the API does.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from scanners import TOOLS

MAX_LIST_ITEMS = 256


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # bool | int | text | choice | multi | lines
    default: Any
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    optional: bool = False  # may be left out (null)

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if isinstance(self.default, list):
            return "\n".join(str(v) for v in self.default)
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


class BadOption(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def _option(name: str, prop: dict[str, Any]) -> Option:
    default = prop.get("default")
    if isinstance(default, list | tuple):
        default = list(default)
    optional = False
    if "anyOf" in prop:
        kinds = [p for p in prop["anyOf"] if p.get("type") != "null"]
        optional = len(kinds) < len(prop["anyOf"])
        prop = {**kinds[0], "default": default} if len(kinds) == 1 else {"default": default}
    if "enum" in prop:
        return Option(name, "choice", default, tuple(map(str, prop["enum"])), optional=optional)
    kind = prop.get("type")
    if kind == "boolean":
        return Option(name, "bool", default)
    if kind == "integer":
        return Option(
            name,
            "int",
            default,
            minimum=prop.get("minimum"),
            maximum=prop.get("maximum"),
            optional=optional,
        )
    if kind == "array":
        items = prop.get("items", {})
        if "enum" in items:
            return Option(name, "multi", default, tuple(map(str, items["enum"])))
        return Option(name, "lines", default)
    return Option(name, "text", default, optional=optional)


@functools.cache
def options(tool: str) -> tuple[Option, ...]:
    """The options of `tool` in declaration order (none for an unknown tool)."""
    spec = TOOLS.get(tool)
    if spec is None:
        return ()
    schema = msgspec.json.schema(spec.config_type)
    body = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return tuple(_option(name, prop) for name, prop in body.get("properties", {}).items())


def input_name(tool: str, option: str) -> str:
    return f"{tool}:{option}"


def config_from_form(tool: str, form: Mapping[str, Any], getlist: Any) -> dict[str, Any]:
    """The config a start form asks for: only options set to other than their default.

    `form` maps input names to values and `getlist(name)` gives every value of a name (a
    Starlette FormData is both). Wrong types are `BadOption` naming `config.<option>`;
    everything else (ranges, combinations) is left to the tool's own validation.
    """
    config: dict[str, Any] = {}
    for opt in options(tool):
        name = input_name(tool, opt.name)
        field = f"config.{opt.name}"
        value: Any
        if opt.kind == "bool":
            value = form.get(name) in ("on", "true", "1")
        elif opt.kind == "multi":
            value = _listed(field, getlist(name))
            if sorted(value) == sorted(opt.default or []):
                continue
        elif opt.kind == "lines":
            value = _listed(field, [v.strip() for v in str(form.get(name, "")).splitlines()])
        else:
            text = str(form.get(name, "")).strip()
            if not text:
                continue  # left empty: the tool's default
            value = text
            if opt.kind == "int":
                try:
                    value = int(text)
                except ValueError:
                    raise BadOption(field, f"{text[:40]!r} is not a whole number") from None
        if value != opt.default:
            config[opt.name] = value
    return config


def _listed(field: str, values: Sequence[Any]) -> list[str]:
    kept = [str(v) for v in values if str(v)]
    if len(kept) > MAX_LIST_ITEMS:
        raise BadOption(field, f"at most {MAX_LIST_ITEMS} items")
    return kept


def form_values(tool: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Input values showing `config` (a scan's, for re-run; {} for the defaults)."""
    values: dict[str, Any] = {}
    for opt in options(tool):
        value = config.get(opt.name, opt.default)
        if opt.kind == "lines" and isinstance(value, list):
            value = "\n".join(map(str, value))
        elif value is None:
            value = ""
        values[input_name(tool, opt.name)] = value
    return values
