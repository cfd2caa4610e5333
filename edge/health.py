"""gRPC health: `jetscan.v1.ScanService` is SERVING only while the pipeline can serve it.

That means NATS is connected, the streams exist, and the launcher, ingest and queries
services answer `$SRV.PING`. A background loop re-checks every `interval` seconds and
flips grpclib `ServiceStatus` objects, so `Health/Watch` streams each change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from grpclib.health.check import ServiceStatus
from grpclib.health.service import OVERALL
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

from contracts import subjects
from edge.bus import Bus

log = logging.getLogger(__name__)

STREAMS = ("COMMANDS", "EVENTS", "OUTPUT", "RESULTS")
# What each public service needs to answer its calls.
NEEDS: dict[str, tuple[str, ...]] = {
    "jetscan.v1.ScanService": ("launcher", "ingest", "queries"),
    "jetscan.v1.ReportService": ("reports", "queries"),
    "jetscan.v1.ScheduleService": ("scheduler", "queries"),
}


class Readiness:
    def __init__(self, bus: Bus, interval: float = 2.0, ping_timeout: float = 0.75) -> None:
        self.bus = bus
        self.interval = interval
        self.ping_timeout = ping_timeout
        self.overall = ServiceStatus()
        self.services = {name: ServiceStatus() for name in NEEDS}
        self.reasons: dict[str, str] = {}

    def checks(self, services: dict[str, Any]) -> dict[Any, list[ServiceStatus]]:
        """grpclib's Health config: service object → its status, plus the overall one."""
        return {OVERALL: [self.overall], **{services[n]: [s] for n, s in self.services.items()}}

    async def _answers(self, role: str) -> bool:
        try:
            await self.bus.nc.request(
                subjects.service_ping(f"jetscan-{role}"), b"", timeout=self.ping_timeout
            )
        except (NoRespondersError, NatsTimeoutError):
            return False
        return True

    async def _streams_exist(self) -> bool:
        try:
            for name in STREAMS:
                await self.bus.js.stream_info(name)
        except (NotFoundError, NatsTimeoutError, NoRespondersError):
            return False
        return True

    async def check_once(self) -> None:
        connected = self.bus.nc.is_connected
        streams = connected and await self._streams_exist()
        roles: set[str] = {r for needs in NEEDS.values() for r in needs}
        alive: dict[str, bool] = {}
        if streams:
            results = await asyncio.gather(*(self._answers(r) for r in sorted(roles)))
            alive = dict(zip(sorted(roles), results, strict=True))
        self.overall.set(connected)
        for name, status in self.services.items():
            missing = _missing(NEEDS[name], alive)
            ok = connected and streams and not missing
            reason = (
                "NATS disconnected"
                if not connected
                else "streams missing"
                if not streams
                else ("not answering: " + ", ".join(missing) if missing else "")
            )
            if reason != self.reasons.get(name, "") or status.__status__() is not ok:
                log.info("health %s: %s", name, "SERVING" if ok else f"NOT_SERVING ({reason})")
            self.reasons[name] = reason
            status.set(ok)

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("health check failed")
                for status in self.services.values():
                    status.set(False)
            await asyncio.sleep(self.interval)


def _missing(needed: Iterable[str], alive: dict[str, bool]) -> list[str]:
    return [r for r in needed if not alive.get(r, False)]
