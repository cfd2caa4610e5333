"""Format → renderer: each a pure function from a frozen snapshot to the file's bytes."""

from __future__ import annotations

from collections.abc import Callable

from contracts.reports import Frozen, ReportFormat, thaw
from handlers.reports import csv_report, defectdojo, json_report, pdf, sarif

RENDERERS: dict[ReportFormat, Callable[[Frozen], bytes]] = {
    ReportFormat.PDF: pdf.render,
    ReportFormat.JSON: json_report.render,
    ReportFormat.SARIF: sarif.render,
    ReportFormat.DEFECTDOJO: defectdojo.render,
    ReportFormat.CSV: csv_report.render,
}


def render(fmt: ReportFormat, frozen: Frozen) -> bytes:
    return RENDERERS[fmt](frozen)


def render_stored(fmt: str, snapshot: bytes) -> bytes:
    """The file of format `fmt` for a stored snapshot: what a worker process runs, and what
    `jetscan report verify` runs to compare."""
    return render(ReportFormat(fmt), thaw(snapshot))
