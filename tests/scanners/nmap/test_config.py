from __future__ import annotations

from typing import Any

import pytest

from scanners import decode_config
from scanners.errors import ConfigError
from scanners.nmap.config import NmapConfig


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, NmapConfig()),
        ({"ports": "22"}, NmapConfig(ports="22")),
        ({"ports": "22,80,8000-8100"}, NmapConfig(ports="22,80,8000-8100")),
        ({"ports": "1-65535"}, NmapConfig(ports="1-65535")),
        ({"ports": "80-80"}, NmapConfig(ports="80-80")),
        ({"ports": None}, NmapConfig()),
        ({"scan_type": "syn", "timing": 0}, NmapConfig(scan_type="syn", timing=0)),
        ({"timing": 5}, NmapConfig(timing=5)),
        ({"service_detection": True}, NmapConfig(service_detection=True)),
        (
            {"service_detection": True, "scripts": ["vulners", "default", "ssl-cert"]},
            NmapConfig(service_detection=True, scripts=("vulners", "default", "ssl-cert")),
        ),
        (
            {"scripts": ["ssl-enum-ciphers", "http-title", "http-headers", "banner"]},
            NmapConfig(scripts=("ssl-enum-ciphers", "http-title", "http-headers", "banner")),
        ),
        ({"host_timeout_seconds": 1}, NmapConfig(host_timeout_seconds=1)),
        ({"host_timeout_seconds": 86400}, NmapConfig(host_timeout_seconds=86400)),
        ({"reverse_dns": False}, NmapConfig(reverse_dns=False)),
    ],
)
def test_valid_configs(raw: dict[str, Any], expected: NmapConfig) -> None:
    assert decode_config("nmap", raw) == expected


def test_defaults_are_a_connect_scan_at_normal_timing() -> None:
    config = NmapConfig()
    assert (config.scan_type, config.timing, config.service_detection) == ("connect", 3, False)
    assert (config.ports, config.scripts, config.host_timeout_seconds) == (None, (), None)


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"ports": ""}, "ports", "is empty"),
        ({"ports": "0"}, "ports", "port 0 is out of range"),
        ({"ports": "65536"}, "ports", "port 65536 is out of range"),
        ({"ports": "100000"}, "ports", "digits only"),
        ({"ports": "100-20"}, "ports", "runs backwards"),
        ({"ports": "22,"}, "ports", "'' is not a port"),
        ({"ports": ",22"}, "ports", "'' is not a port"),
        ({"ports": "22,,80"}, "ports", "'' is not a port"),
        ({"ports": "22 80"}, "ports", "'22 80' is not a port"),
        ({"ports": "T:22"}, "ports", "'T:22' is not a port"),
        ({"ports": "U:53,T:22"}, "ports", "is not a port"),
        ({"ports": "-"}, "ports", "is not a port"),
        ({"ports": "-22"}, "ports", "is not a port"),
        ({"ports": "22-"}, "ports", "is not a port"),
        ({"ports": "1-2-3"}, "ports", "is not a port"),
        ({"ports": "http"}, "ports", "is not a port"),
        ({"ports": "22;id"}, "ports", "is not a port"),
        ({"ports": "22 --script=x"}, "ports", "is not a port"),
        ({"ports": "1," * 600}, "ports", "longer than 1024"),
        ({"scan_type": "udp"}, "scan_type", "Invalid enum value 'udp'"),
        ({"scan_type": "SYN"}, "scan_type", "Invalid enum value 'SYN'"),
        ({"timing": -1}, "timing", ">= 0"),
        ({"timing": 6}, "timing", "<= 5"),
        ({"timing": 3.0}, "timing", "Expected `int`, got `float`"),
        ({"timing": True}, "timing", "Expected `int`, got `bool`"),
        ({"service_detection": "yes"}, "service_detection", "Expected `bool`"),
        ({"scripts": ["smb-brute"]}, "scripts[0]", "Invalid enum value 'smb-brute'"),
        ({"scripts": ["default", "vuln"]}, "scripts[1]", "Invalid enum value 'vuln'"),
        ({"scripts": ["default", "default"]}, "scripts", "more than once"),
        ({"scripts": ["vulners"]}, "scripts", "vulners needs service_detection"),
        ({"scripts": ["--script-args=x"]}, "scripts[0]", "Invalid enum value"),
        ({"host_timeout_seconds": 0}, "host_timeout_seconds", ">= 1"),
        ({"host_timeout_seconds": 86401}, "host_timeout_seconds", "<= 86400"),
        ({"host_timeout_seconds": "30s"}, "host_timeout_seconds", "Expected `int | null`"),
        ({"extra_args": ["-sU"]}, "extra_args", "is not a known option"),
        ({"Ports": "22"}, "Ports", "is not a known option"),
    ],
)
def test_invalid_configs_name_the_field(raw: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        decode_config("nmap", raw)
    assert (raised.value.field, reason in raised.value.reason) == (field, True), raised.value


def test_a_config_cannot_be_built_invalid_directly() -> None:
    with pytest.raises(ConfigError, match="runs backwards"):
        NmapConfig(ports="9-1")
