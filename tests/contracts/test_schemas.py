"""The JSON Schema of every bus message: changing a shape must be a reviewed change."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import msgspec

import contracts
from tests.snapshots import assert_snapshot

SNAPSHOT = Path(__file__).parent / "snapshots" / "bus_schema.json"


def bus_structs() -> list[type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for info in pkgutil.iter_modules(contracts.__path__):
        if info.name in {"gen", "protogen", "settings"}:
            continue
        module = importlib.import_module(f"contracts.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == module.__name__
                and not value.__name__.startswith("_")
            ):
                found[f"{module.__name__}.{value.__name__}"] = value
    return [found[k] for k in sorted(found)]


def test_bus_schema_matches_snapshot() -> None:
    structs = bus_structs()
    assert len(structs) >= 20
    _, components = msgspec.json.schema_components(structs)
    actual = msgspec.json.format(msgspec.json.encode(components), indent=2) + b"\n"
    assert_snapshot(SNAPSHOT, actual)
