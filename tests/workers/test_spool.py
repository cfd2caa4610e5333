"""A result spooled to files reads back as the parse of the whole output, part by part."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest

from contracts import wire
from scanners import TOOLS
from scanners.errors import ParseError
from scanners.output import ToolOutput
from tests import corpus
from tests.workers import nmapxml
from workers.spool import Spooled, spool

# One part for every corpus file, and a budget small enough to cut most into several.
PART_BYTES = (8 << 20, 2048)


def spooled_and_whole(
    tool: str, data: bytes, into: Path, part_bytes: int
) -> tuple[Spooled, ToolOutput]:
    spec = TOOLS[tool]
    into.mkdir()
    return spool(spec, io.BytesIO(data), into, part_bytes), spec.parse_stream(io.BytesIO(data))


def assert_reads_back_as(spooled: Spooled, whole: ToolOutput, part_bytes: int) -> None:
    # Compared as JSON: what travels is JSON, and free-form evidence reads back as lists.
    parts = [spooled.findings(i) for i in range(1, spooled.parts + 1)]
    assert wire.encode([f for part in parts for f in part]) == wire.encode(whole.findings)
    assert wire.encode(spooled.data()) == wire.encode(whole.data)
    assert spooled.partial == whole.partial
    assert spooled.data_size == spooled.data_path.stat().st_size
    if not whole.findings:
        assert (spooled.slices, parts) == ([], [()])
        return
    for (start, end), part in zip(spooled.slices, parts, strict=True):
        # A part holds at most half the budget of findings, unless one finding is bigger.
        assert end - start <= part_bytes // 2 or len(part) == 1


@pytest.mark.parametrize("path", corpus.cases("nmap", "zap", "sslyze"))
@pytest.mark.parametrize("part_bytes", PART_BYTES)
def test_a_corpus_file_spools_to_what_parsing_it_whole_gives(
    path: Path | None, part_bytes: int, tmp_path: Path
) -> None:
    path = corpus.require(path, "corpus files")
    tool, data = path.parent.name, path.read_bytes()
    try:
        TOOLS[tool].parse_stream(io.BytesIO(data))
    except ParseError:
        with pytest.raises(ParseError):
            spool(TOOLS[tool], io.BytesIO(data), tmp_path, part_bytes)
        return
    spooled, whole = spooled_and_whole(tool, data, tmp_path / "spool", part_bytes)
    assert_reads_back_as(spooled, whole, part_bytes)


def test_a_large_scan_is_cut_into_parts_with_its_hosts_spliced_into_the_data(
    tmp_path: Path,
) -> None:
    spooled, whole = spooled_and_whole("nmap", nmapxml.scan_of(600), tmp_path / "spool", 4096)
    assert len(whole.findings) == 600
    assert spooled.parts > 50
    assert len(msgspec.json.decode(spooled.data_path.read_bytes())["hosts"]) == 600
    assert_reads_back_as(spooled, whole, 4096)


def test_a_host_listed_twice_spools_its_finding_once(tmp_path: Path) -> None:
    twice = nmapxml.with_hosts(nmapxml.HOST * 2)
    spooled, whole = spooled_and_whole("nmap", twice, tmp_path / "spool", 4096)
    assert len(whole.data.hosts) == 2
    assert [f.port for f in spooled.findings(1)] == [22]
    assert_reads_back_as(spooled, whole, 4096)


def test_a_cut_scan_spools_as_partial_with_the_complete_hosts(tmp_path: Path) -> None:
    cut = nmapxml.ONE_PORT[: nmapxml.ONE_PORT.index(b"<runstats>")]
    spooled, whole = spooled_and_whole("nmap", cut, tmp_path / "spool", 4096)
    assert spooled.partial
    assert [f.port for f in spooled.findings(1)] == [22]
    assert_reads_back_as(spooled, whole, 4096)


def test_a_scan_with_no_hosts_spools_empty_data(tmp_path: Path) -> None:
    spooled, whole = spooled_and_whole("nmap", nmapxml.with_hosts(b""), tmp_path / "spool", 4096)
    assert whole.data.hosts == ()
    assert_reads_back_as(spooled, whole, 4096)


def test_output_that_does_not_parse_raises_the_parsers_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="nmaprun"):
        spool(TOOLS["nmap"], io.BytesIO(b"<html>not nmap</html>"), tmp_path, 4096)
