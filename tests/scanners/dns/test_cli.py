"""`jetscan parse subfinder|dnsx|dns FILE` as a user runs it: a real process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from scanners import PARSERS
from scanners.dns import transcript
from tests.conftest import run_jetscan
from tests.corpus import corpus_file


def env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "JETSCAN_HOME": str(tmp_path)}


@pytest.mark.parametrize(
    ("tool", "relative"),
    [
        ("subfinder", "subfinder/scb-ex-passive__subfinder-results.jsonl"),
        ("dnsx", "dnsx/ostorlab__dnsx-test-output.json"),
    ],
)
async def test_parse_reads_subfinder_and_dnsx_files(
    tmp_path: Path, tool: str, relative: str
) -> None:
    path = corpus_file(relative)
    code, out, err = await run_jetscan(env(tmp_path), "parse", tool, str(path))
    assert (code, err) == (0, "")
    with path.open("rb") as fp:
        expected = PARSERS[tool](fp).findings
    assert expected
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(msgspec.json.encode(f)) for f in expected
    ]


async def test_parse_reads_the_recon_file_and_says_when_it_was_cut(tmp_path: Path) -> None:
    recon = tmp_path / "recon.jsonl"
    entries = [
        transcript.Start(domain="example.com", scope="example.com"),
        transcript.SubfinderLine('{"host": "www.example.com", "source": "crtsh"}'),
        transcript.SubfinderLine('{"host": "www.example.org", "source": "crtsh"}'),
    ]
    recon.write_bytes(b"".join(transcript.encode(e) for e in entries))
    code, out, err = await run_jetscan(env(tmp_path), "parse", "dns", str(recon))
    assert code == 0
    assert [json.loads(line)["title"] for line in out.splitlines()] == [
        "Domain example.com",
        "Subdomain www.example.com",
        "Out-of-scope name www.example.org",
    ]
    assert err == f"jetscan: {recon}: dns stopped early; these are the findings it got to\n"


async def test_a_bad_subfinder_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "subfinder.jsonl"
    bad.write_text('{"host": "a.example.com"}\n{"source": "crtsh"}\n')
    code, out, err = await run_jetscan(env(tmp_path), "parse", "subfinder", str(bad))
    assert (code, out) == (1, "")
    assert err == (
        f"jetscan: {bad}: not valid subfinder: line 2: Object missing required field `host`\n"
    )
