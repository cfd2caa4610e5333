"""Every real subfinder and dnsx file in the shared corpus, compared to snapshots.

The corpus lives outside the repository (`JETSCAN_CORPUS`, default `../shared/corpus` from the
repository root) and is never copied in. A missing corpus fails the run: a parser that was
silently not tested must not look green. Set `JETSCAN_CORPUS=` (empty) to skip on purpose.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from scanners.dns.parse import (
    parse_dnsx,
    parse_dnsx_stream,
    parse_subfinder,
    parse_subfinder_stream,
)
from scanners.output import ToolOutput
from tests.corpus import (
    assert_streams_and_survives_the_bus,
    cases,
    corpus_file,
    require,
    snapshot_bytes,
    snapshot_names,
    summary_or_error,
)
from tests.snapshots import assert_no_orphans, assert_snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"
PARSERS: dict[str, tuple[Callable[[bytes], ToolOutput], Callable[[IO[bytes]], ToolOutput]]] = {
    "subfinder": (parse_subfinder, parse_subfinder_stream),
    "dnsx": (parse_dnsx, parse_dnsx_stream),
}


def summary(output: ToolOutput) -> dict[str, Any]:
    subdomains = output.data.subdomains
    return {
        "domain": output.data.domain,
        "names": len(subdomains),
        "out_of_scope": sum(1 for s in subdomains if s.out_of_scope),
        "partial": output.partial,
        "severity_counts": dict(collections.Counter(f.severity.value for f in output.findings)),
        "fingerprints": sorted(f.fingerprint for f in output.findings),
        "findings": output.findings,
    }


@pytest.mark.parametrize("path", cases(*PARSERS))
def test_corpus_file_matches_its_snapshot(path: Path | None) -> None:
    path = require(path, "subfinder/* or dnsx/*")
    parse, _ = PARSERS[path.parent.name]
    document = summary_or_error(parse, summary, path.read_bytes())
    assert_snapshot(SNAPSHOTS / f"{path.parent.name}__{path.name}.json", snapshot_bytes(document))


def test_every_snapshot_has_its_corpus_file() -> None:
    assert_no_orphans(SNAPSHOTS, snapshot_names(*PARSERS, with_tool=True))


@pytest.mark.parametrize("path", cases(*PARSERS))
def test_corpus_file_parses_the_same_streamed_and_survives_the_bus(path: Path | None) -> None:
    path = require(path, "subfinder/* or dnsx/*")
    parse, parse_stream = PARSERS[path.parent.name]
    assert_streams_and_survives_the_bus(path, parse, parse_stream, ToolOutput)


@pytest.mark.parametrize("path", cases(*PARSERS))
def test_a_corpus_file_cut_anywhere_is_partial_or_whole(path: Path | None) -> None:
    # What a killed writer leaves: never a ParseError, at worst a partial result. A cut right
    # after a line's closing brace leaves a whole line: nothing shows it was cut.
    data = require(path, "subfinder/* or dnsx/*").read_bytes()
    parse, _ = PARSERS[path.parent.name]
    names = {s.name for s in parse(data).data.subdomains}
    step = max(1, len(data) // 150)
    for length in range(0, len(data), step):
        cut = parse(data[:length])
        assert cut.partial or data[length - 1 : length] in (b"", b"\n", b"}"), length
        assert {s.name for s in cut.data.subdomains} <= names


def test_the_largest_subfinder_file_names_every_host_once() -> None:
    path = corpus_file("subfinder/scb-top__passive_scan_without_ip_example.com.jsonl")
    output = parse_subfinder(path.read_bytes())
    assert output.data.domain == "example.com"
    assert len(output.data.subdomains) == 467
    assert collections.Counter(s.sources for s in output.data.subdomains) == {
        ("alienvault",): 462,
        ("crtsh",): 5,
    }


def test_the_old_subfinder_layout_without_input_parses() -> None:
    output = parse_subfinder(corpus_file("subfinder/reconmap__subfinder.jsonl").read_bytes())
    assert [(f.title, f.host) for f in output.findings] == [
        ("Subdomain mail.rmap.org", "mail.rmap.org"),
        ("Subdomain www.rmap.org", "www.rmap.org"),
    ]


def test_the_dnsx_file_keeps_records_and_ignores_the_rest() -> None:
    output = parse_dnsx(corpus_file("dnsx/ostorlab__dnsx-test-output.json").read_bytes())
    (www,) = output.data.subdomains
    assert www.name == "www.ostorlab.co"
    assert www.status == "NOERROR"
    assert www.a == ("164.90.232.184", "3.67.255.218")
    assert www.cname == ("ostorlab-public-website.netlify.com",)
    assert [f.severity.value for f in output.findings] == ["info"]
