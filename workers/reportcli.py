"""`jetscan report create|get|list|download|verify`: reports, against a running edge.

`verify` downloads a ready report's file and its snapshot, renders the snapshot again here
with the same renderers and exits 0 only when the bytes are identical.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

from grpclib.client import Channel
from grpclib.exceptions import StreamTerminatedError

from contracts.gen.jetscan import v1
from contracts.reports import SNAPSHOT_FILE
from contracts.settings import Settings
from edge.client import UNARY_TIMEOUT, EdgeUnreachableError, resolve_token
from workers.findingcli import _date, _emit
from workers.tables import table, timestamp

FORMATS = {
    "pdf": v1.ReportFormat.PDF,
    "json": v1.ReportFormat.JSON,
    "sarif": v1.ReportFormat.SARIF,
    "defectdojo": v1.ReportFormat.DEFECTDOJO,
    "csv": v1.ReportFormat.CSV,
}
_SEVERITIES = {s.name.lower(): s for s in v1.Severity if s != v1.Severity.UNSPECIFIED}
_HEADERS = ["ID", "STATUS", "FORMAT", "SUBJECT", "CREATED", "SIZE", "ERROR"]
WAIT_SECONDS = 600.0


class ReportCommandError(Exception):
    """A report command that cannot complete (not ready, download refused, mismatch)."""


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], as_json: argparse.ArgumentParser
) -> None:
    report = sub.add_parser("report", help="reports: create, get, list, download, verify")
    verbs = report.add_subparsers(dest="report_command", required=True)
    create = verbs.add_parser("create", parents=[as_json], help="generate a report")
    subject = create.add_mutually_exclusive_group(required=True)
    subject.add_argument("--scan", action="append", metavar="ID", help="a scan (repeatable)")
    subject.add_argument("--domain", help="a domain's findings as they stand")
    subject.add_argument("--target", help="a target's findings as they stand")
    subject.add_argument("--schedule", metavar="ID", help="the latest scan of a schedule")
    create.add_argument("--format", choices=list(FORMATS), required=True)
    create.add_argument("--min-severity", choices=list(_SEVERITIES))
    create.add_argument("--include-triaged", action="store_true")
    create.add_argument("--since", type=_date, metavar="DATE", help="domain/target: changes since")
    create.add_argument("--request-id", default="", help="retrying with it creates no second")
    create.add_argument("--wait", action="store_true", help="until the report is ready or failed")
    create.add_argument("-o", "--output", metavar="FILE", help="wait, then download to FILE")
    get = verbs.add_parser("get", parents=[as_json], help="a report's status")
    get.add_argument("id")
    ls = verbs.add_parser("list", parents=[as_json], help="reports, newest first")
    ls.add_argument("--domain", default="")
    ls.add_argument("--scan", default="", metavar="ID")
    ls.add_argument("--format", choices=list(FORMATS))
    ls.add_argument("--limit", type=int, default=100, help="at most this many (0: all)")
    download = verbs.add_parser("download", help="a ready report's file")
    download.add_argument("id")
    download.add_argument("-o", "--output", metavar="FILE", help="default: the file's name")
    download.add_argument("--snapshot", action="store_true", help="its snapshot instead")
    verify = verbs.add_parser("verify", help="render the snapshot again and compare")
    verify.add_argument("id")


@contextlib.asynccontextmanager
async def _stub(settings: Settings) -> AsyncIterator[v1.ReportServiceStub]:
    token = resolve_token(settings)
    channel = Channel(settings.grpc_addr.host, settings.grpc_addr.port)
    try:
        yield v1.ReportServiceStub(
            channel, timeout=UNARY_TIMEOUT, metadata={"authorization": f"Bearer {token}"}
        )
    except (ConnectionError, StreamTerminatedError, OSError) as exc:
        raise EdgeUnreachableError(settings.grpc_addr) from exc
    finally:
        channel.close()


def _fetch(url: str, token: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise ReportCommandError(f"not a download URL: {url!r}")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=UNARY_TIMEOUT) as response:  # noqa: S310
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise ReportCommandError(f"download refused ({exc.code}): {detail}") from None
    except urllib.error.URLError as exc:
        raise ReportCommandError(f"cannot download {url}: {exc.reason}") from None


async def download(report: v1.Report, token: str, *, snapshot: bool = False) -> bytes:
    if report.status != v1.ReportStatus.READY:
        raise ReportCommandError(f"report {report.id} is {_status(report)}: {report.error}")
    url = report.download_url
    if snapshot:
        url = url.rsplit("/", 1)[0] + "/" + SNAPSHOT_FILE
    return await asyncio.to_thread(_fetch, url, token)


async def wait_ready(stub: v1.ReportServiceStub, report_id: str, within: float) -> v1.Report:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        report = await stub.get_report(v1.GetReportRequest(id=report_id))
        if report.status != v1.ReportStatus.PENDING:
            return report
        if loop.time() > deadline:
            raise ReportCommandError(f"report {report_id} still pending after {within:g}s")
        await asyncio.sleep(0.2)


async def verify(report: v1.Report, token: str) -> list[str]:
    """What differs between the stored report and a fresh render of its snapshot."""
    from handlers.reports.render import render_stored

    data = await download(report, token)
    snap = await download(report, token, snapshot=True)
    problems = []
    if hashlib.sha256(snap).hexdigest() != report.snapshot_sha256:
        problems.append("the snapshot's sha256 differs from the one the report names")
    if hashlib.sha256(data).hexdigest() != report.sha256:
        problems.append("the file's sha256 differs from the one the report names")
    fmt = next(k for k, v in FORMATS.items() if v == report.format)
    again = await asyncio.to_thread(render_stored, fmt, snap)
    if again != data:
        problems.append(
            f"rendering the snapshot again gives other bytes ({len(again)} vs {len(data)})"
        )
    return problems


async def command(args: argparse.Namespace, settings: Settings) -> int:
    token = resolve_token(settings)
    async with _stub(settings) as stub:
        match args.report_command:
            case "create":
                report = await stub.generate_report(_create_request(args))
                if args.wait or args.output:
                    report = await wait_ready(stub, report.id, WAIT_SECONDS)
                if args.output and report.status == v1.ReportStatus.READY:
                    Path(args.output).write_bytes(await download(report, token))
                _show(report, args.json)
                return 0 if report.status != v1.ReportStatus.FAILED else 1
            case "get":
                _show(await stub.get_report(v1.GetReportRequest(id=args.id)), args.json)
            case "list":
                _show_list([r async for r in _list(stub, args)], args.json)
            case "download":
                report = await stub.get_report(v1.GetReportRequest(id=args.id))
                data = await download(report, token, snapshot=args.snapshot)
                name = args.output or (SNAPSHOT_FILE if args.snapshot else report.file_name)
                if name == "-":
                    sys.stdout.buffer.write(data)
                else:
                    Path(name).write_bytes(data)
                    sys.stderr.write(f"wrote {name} ({len(data)} bytes)\n")
            case "verify":
                report = await stub.get_report(v1.GetReportRequest(id=args.id))
                problems = await verify(report, token)
                if problems:
                    for p in problems:
                        sys.stderr.write(f"report {report.id}: {p}\n")
                    return 1
                sys.stdout.write(
                    f"report {report.id}: identical to a fresh render of snapshot"
                    f" {report.snapshot_sha256}\n"
                )
    return 0


def _create_request(args: argparse.Namespace) -> v1.GenerateReportRequest:
    request = v1.GenerateReportRequest(
        format=FORMATS[args.format],
        request_id=args.request_id,
        min_severity=_SEVERITIES.get(args.min_severity or "", v1.Severity.UNSPECIFIED),
        include_triaged=args.include_triaged,
        since=args.since,
    )
    if args.scan:
        request.scan_ids = v1.ScanIds(ids=args.scan)
    elif args.domain is not None:
        request.domain = args.domain
    elif args.target is not None:
        request.target = args.target
    else:
        request.schedule_id = args.schedule
    return request


async def _list(stub: v1.ReportServiceStub, args: argparse.Namespace) -> AsyncIterator[v1.Report]:
    token, n = "", 0
    while True:
        page = await stub.list_reports(
            v1.ListReportsRequest(
                domain=args.domain,
                scan_id=args.scan,
                format=FORMATS[args.format] if args.format else v1.ReportFormat.UNSPECIFIED,
                page_size=100,
                page_token=token,
            )
        )
        for r in page.reports:
            yield r
            n += 1
            if args.limit and n >= args.limit:
                return
        if not (token := page.next_page_token):
            return


def _status(r: v1.Report) -> str:
    return str(v1.ReportStatus(r.status).name).lower()


def _subject(r: v1.Report) -> str:
    if r.domain:
        return f"domain {r.domain}"
    if r.target:
        return f"target {r.target}"
    if r.schedule_id:
        return f"schedule {r.schedule_id}"
    return f"scans {','.join(r.scan_ids)}"


def _show_list(found: list[v1.Report], as_json: bool) -> None:
    if as_json:
        for r in found:
            _emit(r)
        return
    rows = [
        [
            r.id,
            _status(r),
            str(v1.ReportFormat(r.format).name).lower(),
            _subject(r),
            timestamp(r.created_at),
            str(r.size_bytes) if r.size_bytes else "-",
            r.error or "-",
        ]
        for r in found
    ]
    sys.stdout.write(table(_HEADERS, rows))


def _show(r: v1.Report, as_json: bool) -> None:
    if as_json:
        _emit(r)
        return
    lines = [
        ("id", r.id),
        ("status", _status(r)),
        ("format", str(v1.ReportFormat(r.format).name).lower()),
        ("subject", _subject(r)),
        ("created", timestamp(r.created_at)),
        ("ready", timestamp(r.ready_at)),
        ("size", f"{r.size_bytes} bytes" if r.size_bytes else "-"),
        ("sha256", r.sha256 or "-"),
        ("snapshot", r.snapshot_sha256 or "-"),
        ("download", r.download_url or "-"),
        ("error", r.error or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    sys.stdout.write("".join(f"{k.ljust(width)}  {v}\n" for k, v in lines))
