"""ScanService: reads go to the queries service, mutations become JetStream commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

from grpclib import GRPCError
from grpclib.const import Status

from contracts import scans, subjects
from contracts.gen.jetscan import v1
from edge import convert
from edge.bus import Bus


def unimplemented(method: str) -> GRPCError:
    return GRPCError(Status.UNIMPLEMENTED, f"{method} is not implemented yet")


def require_id(field: str, value: str) -> str:
    if not value:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{field}: required")
    try:
        return subjects.token(value)
    except ValueError:
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"{field}: must be 1-128 of A-Z a-z 0-9 _ -"
        ) from None


class ScanService(v1.ScanServiceBase):
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def get_scan(self, message: v1.GetScanRequest) -> v1.Scan:
        scan_id = require_id("id", message.id)
        view = await self.bus.query(
            subjects.query("scan", "get"), scans.GetScan(id=scan_id), scans.ScanView
        )
        return convert.scan_to_pb(view)

    async def list_scans(self, message: v1.ListScansRequest) -> v1.ListScansResponse:
        if message.page_size < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, "page_size: must not be negative")
        status = None
        if message.status != v1.ScanStatus.UNSPECIFIED:
            status = convert.status_from_pb(message.status)
            if status is None:
                raise GRPCError(Status.INVALID_ARGUMENT, "status: unknown value")
        page = await self.bus.query(
            subjects.query("scan", "list"),
            scans.ListScans(
                domain=message.domain,
                tool=message.tool,
                status=status,
                page_size=message.page_size,
                page_token=message.page_token,
            ),
            scans.ScanPage,
        )
        return v1.ListScansResponse(
            scans=[convert.scan_to_pb(s) for s in page.scans],
            next_page_token=page.next_page_token,
        )

    async def start_scan(self, message: v1.StartScanRequest) -> v1.Scan:
        raise unimplemented("jetscan.v1.ScanService/StartScan")

    async def cancel_scan(self, message: v1.CancelScanRequest) -> v1.Scan:
        raise unimplemented("jetscan.v1.ScanService/CancelScan")

    async def list_findings(self, message: v1.ListFindingsRequest) -> v1.ListFindingsResponse:
        raise unimplemented("jetscan.v1.ScanService/ListFindings")

    async def watch_scan(self, message: v1.WatchScanRequest) -> AsyncIterator[v1.ScanEvent]:
        raise unimplemented("jetscan.v1.ScanService/WatchScan")
        yield v1.ScanEvent()  # pragma: no cover - makes this an async generator
