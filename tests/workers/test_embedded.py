"""The embedded nats-server's configuration (workers/embedded.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.embedded import nats_config


def test_every_jetstream_write_is_fsynced_by_default(tmp_path: Path) -> None:
    assert "  sync_interval: always\n" in nats_config(tmp_path, 4222)


def test_the_benchmarks_may_ask_for_another_interval(tmp_path: Path) -> None:
    assert "  sync_interval: 2m\n" in nats_config(tmp_path, 4222, "2m")


@pytest.mark.parametrize("bad", ["", "never", "0s", "2 m", "2m\nlisten: 0.0.0.0:4222", "-1s"])
def test_anything_else_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="sync_interval"):
        nats_config(tmp_path, 4222, bad)
