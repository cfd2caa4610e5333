"""The settings of what an operator sees: metrics address, log format, OTLP endpoint."""

from __future__ import annotations

import pytest

from contracts.settings import Address, SettingsError, load


def test_defaults_keep_metrics_local_logs_text_and_tracing_off() -> None:
    s = load({})
    assert s.metrics_addr == Address("127.0.0.1", 9464)
    assert s.log_format == "text"
    assert s.otlp_endpoint == ""


def test_values_are_read() -> None:
    s = load(
        {
            "JETSCAN_METRICS_ADDR": "0.0.0.0:9100",
            "JETSCAN_LOG_FORMAT": "JSON",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        }
    )
    assert s.metrics_addr == Address("0.0.0.0", 9100)  # noqa: S104 - a pod listens on all
    assert s.log_format == "json"
    assert s.otlp_endpoint == "http://127.0.0.1:4318"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JETSCAN_METRICS_ADDR", "9464"),
        ("JETSCAN_LOG_FORMAT", "logfmt"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load({variable: value})
    assert err.value.variable == variable
