from __future__ import annotations

from typing import Any

import pytest

from scanners import decode_config
from scanners.errors import ConfigError
from scanners.sslyze.config import ALL_SCAN_COMMANDS, SslyzeConfig


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, SslyzeConfig()),
        ({"scan_commands": ["robot"]}, SslyzeConfig(scan_commands=("robot",))),
        (
            {"scan_commands": ["heartbleed", "robot", "tls_1_3_early_data"]},
            SslyzeConfig(scan_commands=("heartbleed", "robot", "tls_1_3_early_data")),
        ),
        ({"server_name": "www.example.com"}, SslyzeConfig(server_name="www.example.com")),
        ({"server_name": None}, SslyzeConfig()),
        ({"starttls": "smtp"}, SslyzeConfig(starttls="smtp")),
        ({"starttls": "postgres"}, SslyzeConfig(starttls="postgres")),
        ({"slow_connection": True}, SslyzeConfig(slow_connection=True)),
    ],
)  # fmt: skip
def test_valid_configs(raw: dict[str, Any], expected: SslyzeConfig) -> None:
    assert decode_config("sslyze", raw) == expected


def test_the_default_runs_every_check_the_findings_read() -> None:
    config = SslyzeConfig()
    assert config.scan_commands == ALL_SCAN_COMMANDS
    assert len(ALL_SCAN_COMMANDS) == 14
    assert (config.server_name, config.starttls, config.slow_connection) == (None, None, False)


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"checks": ["robot"]}, "checks", "is not a known option"),
        ({"args": "--update_trust_stores"}, "args", "is not a known option"),
        ({"scan_commands": []}, "scan_commands", "is empty"),
        ({"scan_commands": ["robot", "robot"]}, "scan_commands", "more than once"),
        ({"scan_commands": ["http_headers"]}, "scan_commands[0]", "Invalid enum value"),
        ({"scan_commands": "robot"}, "scan_commands", "Expected `array`, got `str`"),
        ({"server_name": ""}, "server_name", "is empty"),
        ({"server_name": "-oops"}, "server_name", "not a valid hostname label"),
        ({"server_name": "a b"}, "server_name", "not a valid hostname label"),
        ({"server_name": "127.0.0.1"}, "server_name", "looks like an IP address"),
        ({"server_name": "WWW.example.com"}, "server_name", "'www.example.com'"),
        ({"server_name": 443}, "server_name", "Expected `str | null`, got `int`"),
        ({"starttls": "auto"}, "starttls", "Invalid enum value 'auto'"),
        ({"slow_connection": "yes"}, "slow_connection", "Expected `bool`, got `str`"),
    ],
)
def test_bad_configs_name_the_field(raw: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        decode_config("sslyze", raw)
    assert raised.value.field == field
    assert reason in raised.value.reason
