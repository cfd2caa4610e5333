"""The sslyze parser over every real sslyze file in the shared corpus, compared to snapshots.

The corpus lives outside the repository (`JETSCAN_CORPUS`, default `../shared/corpus` from the
repository root) and is never copied in. A missing corpus fails the run: a parser that was
silently not tested must not look green. Set `JETSCAN_CORPUS=` (empty) to skip on purpose.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from contracts.findings import Severity
from contracts.sslyze import SslyzeRun
from scanners.errors import ParseError
from scanners.output import ToolOutput
from scanners.sslyze.parse import parse, parse_stream
from tests.corpus import (
    all_files,
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
WHAT = "sslyze/*"


def summary(output: ToolOutput) -> dict[str, Any]:
    run = output.data
    assert isinstance(run, SslyzeRun)
    return {
        "version": run.version,
        "format": run.output_format,
        "partial": output.partial,
        "servers": [
            {
                "server": f"{s.hostname}:{s.port}",
                "connected": s.connected,
                "error": s.error,
                "protocols": [p.version for p in s.protocols if p.supported],
                "certificates": [
                    [c.sha256 or c.subject for c in d.received_chain]
                    for d in s.certificate_deployments
                ],
                "hostname_matches": [d.hostname_matches for d in s.certificate_deployments],
                "trusted_by": [
                    sorted(t.store for t in d.trust if t.trusted) for d in s.certificate_deployments
                ],
                "vulnerabilities": s.vulnerabilities,
                "errors": s.errors,
            }
            for s in run.servers
        ],
        "not_scanned": run.not_scanned,
        "severity_counts": dict(collections.Counter(f.severity.value for f in output.findings)),
        "fingerprints": sorted(f.fingerprint for f in output.findings),
        "findings": output.findings,
    }


@pytest.mark.parametrize("path", cases("sslyze"))
def test_corpus_file_matches_its_snapshot(path: Path | None) -> None:
    path = require(path, WHAT)
    document = summary_or_error(parse, summary, path.read_bytes())
    assert "parse_error" not in document, document
    assert_snapshot(SNAPSHOTS / f"{path.name}.json", snapshot_bytes(document))


def test_every_snapshot_has_its_corpus_file() -> None:
    assert_no_orphans(SNAPSHOTS, snapshot_names("sslyze"))


@pytest.mark.parametrize("path", cases("sslyze"))
def test_corpus_file_parses_the_same_streamed_and_survives_the_bus(path: Path | None) -> None:
    path = require(path, WHAT)
    assert_streams_and_survives_the_bus(path, parse, parse_stream, ToolOutput)


def _titles(name: str) -> dict[str, Severity]:
    return {f.title: f.severity for f in parse(corpus_file(f"sslyze/{name}").read_bytes()).findings}


def test_every_generation_is_read() -> None:
    formats = {}
    for path in all_files("sslyze"):
        data = parse(path.read_bytes()).data
        assert isinstance(data, SslyzeRun)
        formats[data.version] = data.output_format
    assert formats["1.4.3"] == "xml"
    assert formats["3.0.0"] == formats["3.0.7"] == "json-legacy"
    assert {formats[v] for v in ("5.0.0b0", "5.0.1", "5.1.3", "6.0.0", "6.2.0")} == {"json"}


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("scb__expired.badssl.com.json", "Certificate expired"),
        ("scb__wrong.host.badssl.com.json", "Certificate does not match the server name"),
        ("scb-v600__self-signed.badssl.com.json", "Certificate not trusted"),
        ("dojo__one_target_many_vuln_old.json", "OpenSSL CCS injection"),
        ("dojo__report_two_target_many_vuln.xml", "OpenSSL CCS injection"),
        ("scb__tls-v1-0.badssl.com_1010.json", "TLS 1.0 accepted"),
    ],
)
def test_the_badssl_style_cases_find_what_they_are_named_for(name: str, title: str) -> None:
    assert title in _titles(name)


def test_an_expired_or_wrong_host_certificate_is_one_finding_not_two() -> None:
    assert "Certificate not trusted" not in _titles("scb__expired.badssl.com.json")
    assert "Certificate not trusted" not in _titles("scb__wrong.host.badssl.com.json")


@pytest.mark.parametrize(
    "name", ["dojo__one_target_many_vuln_old.json", "dojo__report_two_target_many_vuln.xml"]
)
def test_heartbleed_is_critical(name: str) -> None:
    assert _titles(name)["Heartbleed"] is Severity.CRITICAL


def test_unreachable_hosts_are_partial_without_findings() -> None:
    for name in ("scb__unavailable-host.json", "scb-v500__unavailable-host.json"):
        output = parse(corpus_file(f"sslyze/{name}").read_bytes())
        assert output.partial and output.findings == ()
        assert isinstance(output.data, SslyzeRun)
        assert "timed out" in output.data.servers[0].error or "rejected" in (
            output.data.servers[0].error
        )


@pytest.mark.parametrize(
    "name", ["scb__www.securecodebox.io.json", "dojo__report_one_target_three_vuln.xml"]
)
def test_a_real_file_cut_anywhere_is_refused_not_crashed(name: str) -> None:
    data = corpus_file(f"sslyze/{name}").read_bytes()
    for fraction in (0.0001, 0.1, 0.5, 0.9, 0.999):
        with pytest.raises(ParseError):
            parse(data[: int(len(data) * fraction)])
