"""Rendering reports of 1,000 and 10,000 findings, against a bare typst compile of the same rows.

For each size, a synthetic snapshot (findings over 40 rules, every severity, hosts and ports
as a network scan gives them) is built by the snapshot module's pure half and frozen. Each
measurement runs in a fresh process, so its peak RSS is its own:

- pdf, json, sarif: the renderer from the frozen snapshot to the file's bytes;
- bare: `typst.compile` of a one-table document (severity, title, location, state,
  fingerprint) of the same rows, data through `sys_inputs` as the report template gets it.

`pdf_vs_bare` is pdf seconds over bare seconds (the issue asks <= 3; and 10,000 findings to
PDF in <= 10 s and <= 1 GB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.findings import Finding, Severity, fingerprint
from contracts.reports import Frozen, GenerateReport, ReportFormat, ScanSummary, freeze
from contracts.tracking import Change, FindingState, Triage
from handlers.reports.pdf import FONT_PATHS
from handlers.reports.render import render
from handlers.reports.snapshot import Row, assemble

REPO = Path(__file__).resolve().parents[1]
AT = datetime(2026, 12, 1, tzinfo=UTC)
BARE = """#let d = json(bytes(sys.inputs.data))
#set page(paper: "a4", margin: 2cm)
#set text(font: "Noto Sans", size: 7.5pt)
#table(
  columns: (auto, 1fr, 1.2fr, auto, auto),
  table.header[*Severity*][*Finding*][*Location*][*State*][*Fingerprint*],
  ..d.rows.flatten(),
)
"""


def snapshot(n: int) -> Frozen:
    severities = list(Severity)
    rows = []
    for i in range(n):
        host = f"10.0.{i // 250 % 250}.{i % 250 + 1}"
        port = 1 + (i * 7) % 65000
        rule = i % 40
        f = Finding(
            tool="nmap",
            severity=severities[(i * 3) % 5],
            title=f"Rule {rule}: service on {port}/tcp",
            fingerprint=fingerprint("nmap", host, "tcp", port, rule),
            description=f"Check {rule} matched the service's banner and version.",
            host=host,
            port=port,
            protocol="tcp",
            evidence={"reason": "syn-ack", "banner": f"Server {i} ready", "ttl": 64},
            references=(f"https://example.org/rules/{rule}",),
        )
        rows.append(
            Row(
                id=f"{i:032x}",
                finding=f,
                target=host,
                state=FindingState.OPEN,
                change=Change.UNCHANGED if i % 4 else Change.NEW,
                triage=Triage.NONE,
                first_seen=AT - timedelta(days=i % 30),
                last_seen=AT,
                severity=f.severity,
                scanner_severity=f.severity,
                scan_id="bench-scan",
            )
        )
    scan = ScanSummary(
        id="bench-scan",
        tool="nmap",
        target="10.0.0.0/16",
        domain="",
        status="succeeded",
        config={"ports": "1-65535"},
        created_at=AT,
        started_at=AT,
        finished_at=AT + timedelta(minutes=5),
        duration_seconds=300.0,
        exit_code=0,
        partial=False,
        error="",
        scanner_version="",
        schedule_id="",
    )
    cmd = GenerateReport(
        report_id="bench",
        format=ReportFormat.PDF,
        requested_by="bench",
        requested_at=AT,
        scan_ids=("bench-scan",),
    )
    return freeze(assemble(cmd, AT, [scan], rows))[1]


def bare(frozen: Frozen) -> bytes:
    import typst

    rows = [
        [a.severity.value, a.title, a.uri, f"{a.state}/{a.change}", a.fingerprint[:16]]
        for r in frozen.snapshot.rules
        for a in r.affected
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bare.typ"
        path.write_text(BARE)
        data: bytes = typst.compile(
            str(path), sys_inputs={"data": json.dumps({"rows": rows})}, font_paths=list(FONT_PATHS)
        )
        return data


def one(kind: str, n: int) -> dict[str, object]:
    """One measurement in this process."""
    frozen = snapshot(n)
    start = time.perf_counter()
    out = bare(frozen) if kind == "bare" else render(ReportFormat(kind), frozen)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "bytes": len(out),
    }


def measure(kind: str, n: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "report", "--one", kind, str(n)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench report")
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return 0
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        row: dict[str, object] = {"findings": n}
        for kind in ("bare", "pdf", "json", "sarif"):
            row[kind] = measure(kind, n)
        pdf_s = row["pdf"]["seconds"]  # type: ignore[index]
        bare_s = row["bare"]["seconds"]  # type: ignore[index]
        row["pdf_vs_bare"] = round(pdf_s / bare_s, 2)
        results.append(row)
        print(json.dumps(row), flush=True)
    return 0
