"""`jetscan parse sslyze FILE` as a user runs it: a real process, no stack needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from scanners import TOOLS
from tests.conftest import run_jetscan
from tests.corpus import corpus_file


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}


@pytest.mark.parametrize(
    "name", ["scb__expired.badssl.com.json", "dojo__report_two_target_many_vuln.xml"]
)
async def test_parse_prints_one_finding_per_line(tmp_path: Path, name: str) -> None:
    path = corpus_file(f"sslyze/{name}")
    code, out, err = await run_jetscan(_env(tmp_path), "parse", "sslyze", str(path))
    assert (code, err) == (0, "")
    expected = TOOLS["sslyze"].parse(path.read_bytes()).findings
    assert expected
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(msgspec.json.encode(f)) for f in expected
    ]


async def test_an_unreachable_host_prints_nothing_and_says_it_is_partial(tmp_path: Path) -> None:
    path = corpus_file("sslyze/scb__unavailable-host.json")
    code, out, err = await run_jetscan(_env(tmp_path), "parse", "sslyze", str(path))
    assert (code, out) == (0, "")
    assert err == f"jetscan: {path}: sslyze stopped early; these are the findings it got to\n"


async def test_a_file_that_is_no_report_is_one_line_naming_what_it_found(tmp_path: Path) -> None:
    markdown = tmp_path / "sslyze.json"
    markdown.write_text("# TLS report\n\nAll servers fine.\n")
    code, out, err = await run_jetscan(_env(tmp_path), "parse", "sslyze", str(markdown))
    assert (code, out) == (1, "")
    assert err == (
        f"jetscan: {markdown}: not valid sslyze: neither sslyze JSON (an object) nor sslyze XML:"
        " found Markdown text starting '# TLS report'\n"
    )


async def test_sslyze_2_json_parses_from_the_command_line(tmp_path: Path) -> None:
    old = tmp_path / "sslyze2.json"
    old.write_text('{"accepted_targets": [], "invalid_targets": [], "sslyze_version": "2.1.4"}')
    code, out, err = await run_jetscan(_env(tmp_path), "parse", "sslyze", str(old))
    assert (code, out, err) == (0, "", "")
