from __future__ import annotations

from typing import Any

import pytest

from scanners import TOOLS, decode_config
from scanners.errors import ConfigError
from scanners.nmap.config import NmapConfig
from scanners.targets import TargetKind


def test_nmap_is_registered_with_its_pieces() -> None:
    spec = TOOLS["nmap"]
    assert spec.name == "nmap"
    assert spec.config_type is NmapConfig
    assert spec.accepted_exit_codes == frozenset({0})
    assert spec.target_kinds == {TargetKind.HOST, TargetKind.IP, TargetKind.CIDR}
    assert 0 < spec.default_deadline_seconds <= spec.max_deadline_seconds


def test_every_tool_is_registered_under_its_own_name() -> None:
    assert all(name == spec.name for name, spec in TOOLS.items())


def test_decode_config_returns_the_tools_struct() -> None:
    assert decode_config("nmap", {"ports": "22", "timing": 4}) == NmapConfig(ports="22", timing=4)
    assert decode_config("nmap", {}) == NmapConfig()


@pytest.mark.parametrize(
    ("tool", "raw", "field", "reason"),
    [
        ("nope", {}, "tool", "unknown tool 'nope'; known: "),
        ("nmap", {"timming": 3}, "timming", "is not a known option"),
        ("nmap", {"args": "-sU"}, "args", "is not a known option"),
        ("nmap", {"timing": 9}, "timing", "Expected `int` <= 5"),
        ("nmap", {"timing": "3"}, "timing", "Expected `int`, got `str`"),
        ("nmap", {"scripts": ["default", "smb-brute"]}, "scripts[1]", "Invalid enum value"),
        ("nmap", {"scripts": "default"}, "scripts", "Expected `array`, got `str`"),
        ("nmap", {"ports": "1-99999"}, "ports", "out of range"),
        ("nmap", {"ports": 22}, "ports", "Expected `str | null`, got `int`"),
        ("nmap", [], "config", "must be a JSON object"),
    ],
)
def test_decode_config_names_the_offending_field(
    tool: str, raw: Any, field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        decode_config(tool, raw)
    assert raised.value.field == field
    assert reason in raised.value.reason
    assert str(raised.value) == f"{field}: {raised.value.reason}"
