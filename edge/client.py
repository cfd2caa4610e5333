"""The gRPC client of the edge that the `jetscan scan ...` commands use.

A thin layer over the generated stubs: it adds the bearer token to every call, follows page
tokens, and turns a connection failure into one typed error. Server answers stay
`grpclib.GRPCError`, whose status the caller reports as it sees fit.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, TypeVar

from grpclib.client import Channel
from grpclib.exceptions import StreamTerminatedError

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.settings import Address, Settings
from edge.tls import client_context

T = TypeVar("T")

# Unary calls are queries or single publishes; one that takes this long is stuck, and a
# CLI must not hang on it. Watches have no limit: a scan may run for hours.
UNARY_TIMEOUT = 30.0
_PAGE_SIZE = 100


class EdgeUnreachableError(Exception):
    """Nothing answered at the edge's address, or the connection broke mid-call."""

    def __init__(self, address: Address, why: str = "") -> None:
        super().__init__(address)
        self.address = address
        self.why = why

    def __str__(self) -> str:
        if self.why:
            return f"cannot reach the edge at {self.address}: {self.why} (JETSCAN_TLS_CA?)"
        return f"cannot reach the edge at {self.address} (is `jetscan up` running?)"


class TokenMissingError(Exception):
    """No token to send: JETSCAN_TOKEN is unset and there is no admin token file."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f"no API token: set JETSCAN_TOKEN, or run `jetscan up` to create {self.path}"


def resolve_token(settings: Settings) -> str:
    """JETSCAN_TOKEN if set, else the admin token `jetscan up` wrote under JETSCAN_HOME."""
    if settings.token:
        return settings.token
    path = settings.admin_token_path
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise TokenMissingError(str(path)) from None
    if not token:
        raise TokenMissingError(str(path))
    return token


class EdgeClient:
    """ScanService calls with the caller's token; use as `async with EdgeClient(...)`."""

    def __init__(
        self,
        address: Address,
        token: str,
        *,
        timeout: float = UNARY_TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address = address
        # grpclib connects lazily, on the first call: constructing never fails.
        self._channel = Channel(address.host, address.port, ssl=tls)
        metadata = {"authorization": f"Bearer {token}"}
        self._scans = v1.ScanServiceStub(self._channel, timeout=timeout, metadata=metadata)
        # A stub without a timeout for watches: a stub-level timeout cannot be lifted per
        # call (None means "the stub's"), and a long scan's console must not be cut off.
        self._streams = v1.ScanServiceStub(self._channel, metadata=metadata)
        self.schedules = v1.ScheduleServiceStub(self._channel, timeout=timeout, metadata=metadata)

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeClient:
        tls = client_context(settings.tls_ca) if settings.tls_ca else None
        return cls(settings.grpc_addr, resolve_token(settings), tls=tls)

    async def __aenter__(self) -> EdgeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    async def start_scan(
        self,
        target: str,
        tool: str,
        config: dict[str, Any],
        *,
        request_id: str = "",
        deadline_seconds: int = 0,
    ) -> v1.Scan:
        request = v1.StartScanRequest(
            target=target,
            tool=tool,
            config=Struct.from_dict(config),
            request_id=request_id,
            deadline_seconds=deadline_seconds,
        )
        return await self._call(self._scans.start_scan(request))

    async def get_scan(self, scan_id: str) -> v1.Scan:
        return await self._call(self._scans.get_scan(v1.GetScanRequest(id=scan_id)))

    async def cancel_scan(self, scan_id: str) -> v1.Scan:
        return await self._call(self._scans.cancel_scan(v1.CancelScanRequest(id=scan_id)))

    async def list_scans(
        self,
        *,
        domain: str = "",
        tool: str = "",
        status: v1.ScanStatus = v1.ScanStatus.UNSPECIFIED,
        limit: int = 0,
    ) -> AsyncIterator[v1.Scan]:
        """Scans newest first, across pages; `limit` 0 means all of them."""
        seen = 0
        token = ""
        while True:
            request = v1.ListScansRequest(
                domain=domain,
                tool=tool,
                status=status,
                page_size=min(limit - seen, _PAGE_SIZE) if limit else _PAGE_SIZE,
                page_token=token,
            )
            page = await self._call(self._scans.list_scans(request))
            for scan in page.scans:
                yield scan
                seen += 1
                if limit and seen >= limit:
                    return
            token = page.next_page_token
            if not token:
                return

    async def list_findings(
        self, scan_id: str, *, min_severity: v1.Severity = v1.Severity.UNSPECIFIED
    ) -> AsyncIterator[v1.Finding]:
        token = ""
        while True:
            request = v1.ListFindingsRequest(
                scan_id=scan_id, min_severity=min_severity, page_size=_PAGE_SIZE, page_token=token
            )
            page = await self._call(self._scans.list_findings(request))
            for finding in page.findings:
                yield finding
            token = page.next_page_token
            if not token:
                return

    async def find(
        self, request: v1.ListFindingsRequest, *, limit: int = 0
    ) -> AsyncIterator[v1.Finding]:
        """Findings matching `request`, page after page; at most `limit` (0: all)."""
        seen = 0
        request.page_size = _PAGE_SIZE
        while True:
            page = await self._call(self._scans.list_findings(request))
            for finding in page.findings:
                yield finding
                seen += 1
                if limit and seen >= limit:
                    return
            request.page_token = page.next_page_token
            if not request.page_token:
                return

    async def get_finding(self, finding_id: str) -> v1.Finding:
        return await self._call(self._scans.get_finding(v1.GetFindingRequest(id=finding_id)))

    async def triage_finding(self, request: v1.TriageFindingRequest) -> v1.Finding:
        return await self._call(self._scans.triage_finding(request))

    async def watch_scan(self, scan_id: str, *, after_seq: int = 0) -> AsyncIterator[v1.ScanEvent]:
        request = v1.WatchScanRequest(id=scan_id, after_seq=after_seq)
        events_iter = aiter(self._streams.watch_scan(request))
        while True:
            try:
                event = await anext(events_iter)
            except StopAsyncIteration:
                return
            except (OSError, StreamTerminatedError) as exc:
                raise EdgeUnreachableError(self.address) from exc
            yield event

    async def call(self, call: Awaitable[T]) -> T:
        """Any unary call (of `schedules`, say), a connection failure as EdgeUnreachableError."""
        return await self._call(call)

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ssl.SSLError as exc:
            raise EdgeUnreachableError(self.address, f"TLS: {exc.reason or exc}") from exc
        except (OSError, StreamTerminatedError) as exc:
            raise EdgeUnreachableError(self.address) from exc
