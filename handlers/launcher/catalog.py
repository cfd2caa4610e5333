"""The launcher's view of which scans exist, asked of the queries service over NATS.

The launcher holds no database credentials; reconciling its Jobs with the scans needs only
the running scans (`query.scan.list`) and whether a scan exists at all (`query.scan.get`,
which also knows a scan whose start command is not projected yet).
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.errors import Error as NatsError

from contracts import subjects, wire
from contracts.scans import GetScan, ListScans, ScanPage, ScanStatus, ScanView

_PAGE = 1000


class CatalogUnavailable(Exception):
    """The queries service did not answer, or answered with an error other than not-found."""


class Catalog:
    def __init__(self, nc: Client, *, timeout: float = 5.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def _ask(self, subject: str, request: object) -> tuple[str, bytes]:
        """(error code or "", reply body); CatalogUnavailable when nobody answers."""
        try:
            msg = await self.nc.request(subject, wire.encode(request), timeout=self.timeout)
        except (TimeoutError, NatsError) as exc:
            raise CatalogUnavailable(f"{subject}: {exc!r}") from exc
        headers = msg.headers or {}
        return headers.get("Nats-Service-Error-Code", ""), msg.data

    async def running(self) -> list[ScanView]:
        """Every scan in status RUNNING, all pages."""
        scans: list[ScanView] = []
        token = ""
        while True:
            request = ListScans(status=ScanStatus.RUNNING, page_size=_PAGE, page_token=token)
            code, body = await self._ask(subjects.query("scan", "list"), request)
            if code:
                raise CatalogUnavailable(f"scan list failed with {code}")
            page = msgspec.json.decode(body, type=ScanPage)
            scans.extend(page.scans)
            token = page.next_page_token
            if not token:
                return scans

    async def known(self, scan_id: str) -> bool:
        code, _ = await self._ask(subjects.query("scan", "get"), GetScan(id=scan_id))
        if code == "404":
            return False
        if code:
            raise CatalogUnavailable(f"scan get failed with {code}")
        return True
