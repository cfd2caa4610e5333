"""What the portal's pages need, built once by `edge.web.create_app`: the bus, the token
cache, the sessions, the gRPC services (whose methods the forms call, so a form and an RPC
validate and refuse alike), the rate limits and the service health."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.js.kv import KeyValue
from starlette.requests import HTTPConnection

from edge.bus import Bus
from edge.health import Readiness
from edge.portal.sessions import SessionStore
from edge.ratelimit import RateLimits
from edge.reporting import ReportService
from edge.scans import ScanService
from edge.schedules import ScheduleService


@dataclass
class Portal:
    bus: Bus
    sessions: SessionStore
    readiness: Readiness
    scans: ScanService
    schedules: ScheduleService
    reports: ReportService
    limits: RateLimits
    grpc_addr: str
    public_url: str = ""
    _buckets: dict[str, KeyValue] = field(default_factory=dict)

    async def bucket(self, name: str) -> KeyValue:
        """A key-value bucket, bound once (binding asks the server for its stream)."""
        if name not in self._buckets:
            self._buckets[name] = await self.bus.js.key_value(name)
        return self._buckets[name]


def portal_of(conn: HTTPConnection) -> Portal:
    portal: Portal = conn.app.state.portal
    return portal
