"""The snapshot rules themselves: nothing is written unless asked for, never under CI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.snapshots import UPDATE, assert_no_orphans, assert_snapshot


@pytest.fixture(autouse=True)
def plain_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPDATE, raising=False)
    monkeypatch.delenv("CI", raising=False)


def test_a_missing_snapshot_fails_and_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    with pytest.raises(pytest.fail.Exception, match="is missing: run with JETSCAN_UPDATE"):
        assert_snapshot(path, b"{}\n")
    assert not path.exists()


def test_a_changed_snapshot_fails_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_bytes(b"old\n")
    with pytest.raises(pytest.fail.Exception, match="differs from its snapshot"):
        assert_snapshot(path, b"new\n")
    assert path.read_bytes() == b"old\n"
    assert_snapshot(path, b"old\n")


def test_updating_writes_when_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UPDATE, "1")
    path = tmp_path / "sub" / "case.json"
    assert_snapshot(path, b"new\n")
    assert path.read_bytes() == b"new\n"


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_updating_is_refused_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv(UPDATE, "1")
    monkeypatch.setenv("CI", ci)
    path = tmp_path / "case.json"
    with pytest.raises(pytest.fail.Exception, match="under CI"):
        assert_snapshot(path, b"new\n")
    assert not path.exists()


def test_an_orphaned_snapshot_fails_and_updating_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kept.json").write_text("{}")
    (tmp_path / "gone.json").write_text("{}")
    with pytest.raises(AssertionError, match=re.escape("without a case: ['gone.json']")):
        assert_no_orphans(tmp_path, ["kept.json"])
    monkeypatch.setenv(UPDATE, "1")
    assert_no_orphans(tmp_path, ["kept.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]
