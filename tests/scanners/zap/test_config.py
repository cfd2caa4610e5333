from __future__ import annotations

from typing import Any

import pytest

from scanners import TOOLS, decode_config
from scanners.errors import ConfigError
from scanners.targets import TargetKind
from scanners.zap.config import MAX_DEADLINE_SECONDS, MAX_PHASE_MINUTES, ZapConfig


def test_zap_is_registered_with_its_pieces() -> None:
    spec = TOOLS["zap"]
    assert spec.config_type is ZapConfig
    assert spec.output_file == "zap-report.json"
    assert spec.accepted_exit_codes == frozenset({0, 2})
    assert spec.target_kinds == {TargetKind.URL}
    assert spec.max_deadline_seconds == MAX_DEADLINE_SECONDS
    assert 0 < spec.default_deadline_seconds <= spec.max_deadline_seconds


def test_the_defaults_spider_and_wait_five_minutes_each() -> None:
    config = decode_config("zap", {})
    assert config == ZapConfig()
    assert ZapConfig().phases() == [("spider_minutes", 5), ("passive_wait_minutes", 5)]


def test_every_phase_runs_in_order_when_given_minutes() -> None:
    config = decode_config(
        "zap",
        {
            "spider_minutes": 2,
            "ajax_spider_minutes": 3,
            "passive_wait_minutes": 4,
            "active_scan_minutes": 30,
            "active_scan_policy": "St-High-Th-Low",
        },
    )
    assert isinstance(config, ZapConfig)
    assert config.phases() == [
        ("spider_minutes", 2),
        ("ajax_spider_minutes", 3),
        ("passive_wait_minutes", 4),
        ("active_scan_minutes", 30),
    ]


def test_phases_that_fill_the_longest_deadline_are_accepted() -> None:
    config = decode_config(
        "zap", {"spider_minutes": MAX_PHASE_MINUTES - 1, "passive_wait_minutes": 1}
    )
    assert isinstance(config, ZapConfig)
    assert sum(minutes for _, minutes in config.phases()) * 60 <= MAX_DEADLINE_SECONDS


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"spider": 5}, "spider", "is not a known option"),
        ({"zap_options": "-config x=y"}, "zap_options", "is not a known option"),
        ({"spider_minutes": 0}, "spider_minutes", "Expected `int` >= 1"),
        ({"spider_minutes": "5"}, "spider_minutes", "Expected `int`, got `str`"),
        ({"passive_wait_minutes": None}, "passive_wait_minutes", "Expected `int`, got `null`"),
        ({"ajax_spider_minutes": 0}, "ajax_spider_minutes", "Expected `int` >= 1"),
        ({"active_scan_minutes": 1441}, "active_scan_minutes", "Expected `int` <= 1438"),
        (
            {"active_scan_minutes": 60, "active_scan_policy": "St-Ins-Th-Low"},
            "active_scan_policy",
            "Invalid enum value 'St-Ins-Th-Low'",
        ),
        (
            {"active_scan_policy": "Default Policy"},
            "active_scan_policy",
            "applies only with active_scan_minutes",
        ),
        (
            {"spider_minutes": 1000, "passive_wait_minutes": 400, "active_scan_minutes": 100},
            "active_scan_minutes",
            "the phases add up to more than 1438 minutes",
        ),
        (
            {"spider_minutes": 1000, "ajax_spider_minutes": 500},
            "ajax_spider_minutes",
            "would not fit the longest deadline (86400 s)",
        ),
    ],
)
def test_bad_options_name_the_field(raw: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        decode_config("zap", raw)
    assert raised.value.field == field
    assert reason in raised.value.reason
