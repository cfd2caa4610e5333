"""ScanService: reads go to the queries service, mutations become JetStream commands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from grpclib import GRPCError
from grpclib.const import Status

from contracts import scans, subjects, wire
from contracts.gen.jetscan import v1
from contracts.output import OutputLine
from edge import auth, convert, findings, live, validate
from edge.bus import Bus
from edge.validate import optional_id, require_id
from scanners.requests import Capabilities
from scanners.scope import Scope


def unimplemented(method: str) -> GRPCError:
    return GRPCError(Status.UNIMPLEMENTED, f"{method} is not implemented yet")


class ScanService(v1.ScanServiceBase):
    def __init__(self, bus: Bus, scope: Scope, capabilities: Capabilities) -> None:
        self.bus = bus
        self.scope = scope
        self.capabilities = capabilities

    async def _view(self, scan_id: str) -> scans.ScanView:
        return await self.bus.query(
            subjects.query("scan", "get"), scans.GetScan(id=scan_id), scans.ScanView
        )

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> bool:
        """Publish a command and wait for JetStream's ack; return whether it was a duplicate."""
        return await self.bus.command(subject, payload, msg_id)

    async def get_scan(self, message: v1.GetScanRequest) -> v1.Scan:
        return convert.scan_to_pb(await self._view(require_id("id", message.id)))

    async def list_scans(self, message: v1.ListScansRequest) -> v1.ListScansResponse:
        if message.page_size < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, "page_size: must not be negative")
        status = None
        if message.status != v1.ScanStatus.UNSPECIFIED:
            status = convert.status_from_pb(message.status)
            if status is None:
                raise GRPCError(Status.INVALID_ARGUMENT, "status: unknown value")
        domain, tool = validate.list_filters(message.domain, message.tool)
        since, until = validate.time_range(message.since, message.until)
        page = await self.bus.query(
            subjects.query("scan", "list"),
            scans.ListScans(
                domain=domain,
                tool=tool,
                status=status,
                schedule_id=optional_id("schedule_id", message.schedule_id),
                page_size=message.page_size,
                page_token=message.page_token,
                target=validate.target_filter("target", message.target),
                since=since,
                until=until,
            ),
            scans.ScanPage,
        )
        return v1.ListScansResponse(
            scans=[convert.scan_to_pb(s) for s in page.scans],
            next_page_token=page.next_page_token,
        )

    async def start_scan(self, message: v1.StartScanRequest, *, trigger: str = "api") -> v1.Scan:
        """The StartScan RPC; the portal's form calls it with `trigger="portal"`."""
        principal = auth.current.get()
        request_id = validate.request_id(message.request_id)
        valid = validate.validate_start(
            message.tool,
            message.target,
            convert.struct_to_dict(message.config),
            message.deadline_seconds,
            self.scope,
            self.capabilities,
        )
        scan_id = validate.scan_id(principal.key, request_id)
        cmd = scans.StartScan(
            scan_id=scan_id,
            target=valid.target.value,
            domain=valid.target.domain,
            tool=valid.tool,
            config=valid.config,
            deadline_seconds=valid.deadline_seconds,
            requested_by=principal.name,
            requested_at=datetime.now(UTC),
            request_id=request_id,
            trigger=trigger,
        )
        duplicate = await self._publish(
            subjects.scan_start(scan_id),
            wire.encode(cmd),
            subjects.msg_id("scan", scan_id, "start"),
        )
        if duplicate:
            # The same request_id was accepted before: answer with that scan as it is now,
            # unless it was asked for with other parameters (a reused key, not a retry).
            return convert.scan_to_pb(validate.same_request(await self._view(scan_id), cmd))
        return convert.scan_to_pb(scans.queued(cmd))

    async def cancel_scan(self, message: v1.CancelScanRequest) -> v1.Scan:
        scan_id = require_id("id", message.id)
        view = await self._view(scan_id)
        if view.status.terminal:
            raise GRPCError(
                Status.FAILED_PRECONDITION, f"scan {scan_id} already ended: {view.status.value}"
            )
        cmd = scans.CancelScan(
            scan_id=scan_id, requested_by=auth.current.get().name, requested_at=datetime.now(UTC)
        )
        await self._publish(
            subjects.scan_cancel(scan_id),
            wire.encode(cmd),
            subjects.msg_id("scan", scan_id, "cancel"),
        )
        return convert.scan_to_pb(view)

    async def list_findings(self, message: v1.ListFindingsRequest) -> v1.ListFindingsResponse:
        return await findings.list_findings(self.bus, message)

    async def get_finding(self, message: v1.GetFindingRequest) -> v1.Finding:
        return await findings.get_finding(self.bus, message)

    async def triage_finding(self, message: v1.TriageFindingRequest) -> v1.Finding:
        return await findings.triage_finding(self.bus, message)

    async def watch_scan(self, message: v1.WatchScanRequest) -> AsyncIterator[v1.ScanEvent]:
        """The scan's console and status changes (`edge/live.py`), ending when the scan does.

        A slow client slows only its own stream: HTTP/2 flow control holds the feed, whose
        consumer then leaves the backlog in the OUTPUT stream.
        """
        scan_id = require_id("id", message.id)
        if message.after_seq > live.MAX_SEQ:
            raise GRPCError(Status.INVALID_ARGUMENT, f"after_seq: at most {live.MAX_SEQ}")
        feed = live.Feed(self.bus, scan_id, message.after_seq)
        frames = feed.frames()
        try:
            async for frame in frames:
                if isinstance(frame, OutputLine):
                    yield v1.ScanEvent(line=convert.line_to_pb(frame))
                else:
                    yield v1.ScanEvent(status=convert.scan_to_pb(frame))
        finally:
            await frames.aclose()  # type: ignore[attr-defined]
