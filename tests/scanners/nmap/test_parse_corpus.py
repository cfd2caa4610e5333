"""The nmap parser over every real nmap file in the shared corpus, compared to snapshots.

The corpus lives outside the repository (`JETSCAN_CORPUS`, default `../shared/corpus` from the
repository root) and is never copied in. A missing corpus fails the run: a parser that was
silently not tested must not look green. Set `JETSCAN_CORPUS=` (empty) to skip on purpose.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from scanners.errors import ParseError
from scanners.nmap.parse import parse, parse_stream
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
WHAT = "nmap/*.xml"


def summary(output: ToolOutput) -> dict[str, Any]:
    return {
        "host_count": len(output.data.hosts),
        "partial": output.partial,
        "severity_counts": dict(collections.Counter(f.severity.value for f in output.findings)),
        "fingerprints": sorted(f.fingerprint for f in output.findings),
        "findings": output.findings,
    }


@pytest.mark.parametrize("path", cases("nmap", pattern="*.xml"))
def test_corpus_file_matches_its_snapshot(path: Path | None) -> None:
    path = require(path, WHAT)
    document = summary_or_error(parse, summary, path.read_bytes())
    assert_snapshot(SNAPSHOTS / f"{path.name}.json", snapshot_bytes(document))


def test_every_snapshot_has_its_corpus_file() -> None:
    assert_no_orphans(SNAPSHOTS, snapshot_names("nmap", pattern="*.xml"))


@pytest.mark.parametrize("path", cases("nmap", pattern="*.xml"))
def test_corpus_file_parses_the_same_streamed_and_survives_the_bus(path: Path | None) -> None:
    path = require(path, WHAT)
    assert_streams_and_survives_the_bus(path, parse, parse_stream, ToolOutput)


def test_vulners_cves_are_findings_with_cvss_severity() -> None:
    output = parse(corpus_file("nmap/dojo__nmap_script_vulners.xml").read_bytes())
    assert [(f.title, f.severity.value, f.port) for f in output.findings] == [
        ("Open port 5022/tcp (ssh)", "info", 5022),
        ("CVE-2018-15919", "medium", 5022),
        ("CVE-2017-15906", "medium", 5022),
    ]


def test_the_interrupted_ostorlab_scan_is_partial_not_an_error() -> None:
    output = parse(corpus_file("nmap/ostorlab__comprehensive_scan_output.xml").read_bytes())
    assert output.partial
    assert output.findings == ()
    assert len(output.data.prescripts) > 0


def test_a_large_scan_cut_mid_host_keeps_what_was_complete() -> None:
    data = corpus_file("nmap/phage__nmap-2016-03-29.xml").read_bytes()
    full = parse(data)
    fingerprints = {f.fingerprint for f in full.findings}
    for fraction in (0.1, 0.35, 0.6, 0.85, 0.99):
        cut = parse(data[: int(len(data) * fraction)])
        assert cut.partial
        assert 0 < len(cut.data.hosts) < len(full.data.hosts)
        assert cut.data.hosts == full.data.hosts[: len(cut.data.hosts)]
        assert {f.fingerprint for f in cut.findings} <= fingerprints


def test_a_real_file_cut_anywhere_is_partial_or_refused_before_the_root() -> None:
    data = corpus_file("nmap/scrying__nmap.xml").read_bytes()
    root = data.index(b"<nmaprun")
    for length in range(0, len(data) - len(b"</nmaprun>\n"), 7):
        try:
            output = parse(data[:length])
        except ParseError:
            assert length <= data.index(b">", root), length
        else:
            assert output.partial, length
