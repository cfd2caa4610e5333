"""`jetscan parse zap FILE` as a user runs it: a real process, no servers needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from scanners import TOOLS
from tests.conftest import run_jetscan
from tests.corpus import corpus_file


@pytest.mark.parametrize(
    "name",
    ["secobserve__owasp_zap.json", "dojo__juicy2.xml", "lightbroker-compact__report_json.json"],
)
async def test_parse_prints_one_finding_per_line(tmp_path: Path, name: str) -> None:
    path = corpus_file(f"zap/{name}")
    env = {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}
    code, out, err = await run_jetscan(env, "parse", "zap", str(path))
    assert (code, err) == (0, "")
    expected = TOOLS["zap"].parse(path.read_bytes()).findings
    assert expected
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(msgspec.json.encode(f)) for f in expected
    ]


async def test_a_file_that_is_no_zap_report_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}
    sslyze = tmp_path / "result.json"
    sslyze.write_text('{"server_scan_results": []}')
    code, out, err = await run_jetscan(env, "parse", "zap", str(sslyze))
    assert (code, out) == (1, "")
    assert err == (
        f"jetscan: {sslyze}: not valid zap: not a ZAP JSON report:"
        " Object missing required field `site`\n"
    )
