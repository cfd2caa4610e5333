"""The edge process: gRPC (grpclib) and HTTP (Starlette under uvicorn) on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta

import uvicorn
from grpclib.events import RecvMessage, RecvRequest, SendTrailingMetadata, listen
from grpclib.health.service import Health
from grpclib.server import Server

from contracts.settings import Settings
from edge import messages
from edge.audit import Auditor
from edge.auth import TokenCache
from edge.bus import Bus
from edge.health import Readiness
from edge.metrics import GrpcMetrics
from edge.portal.context import Portal
from edge.portal.sessions import SessionStore
from edge.ratelimit import RateLimits
from edge.reflection import with_reflection
from edge.reporting import ReportService
from edge.scans import ScanService
from edge.schedules import ScheduleService
from edge.tls import server_context
from edge.web import create_app
from scanners.requests import Capabilities
from scanners.scope import Scope

log = logging.getLogger(__name__)


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _hooks(server: Server, tokens: TokenCache, limits: RateLimits, auditor: Auditor) -> None:
    grpc_metrics = GrpcMetrics()  # first: a call auth refuses is counted too
    listen(server, RecvRequest, grpc_metrics.on_request)
    listen(server, SendTrailingMetadata, grpc_metrics.on_trailers)
    listen(server, RecvRequest, tokens.on_request)
    listen(server, RecvRequest, limits.on_request)
    listen(server, SendTrailingMetadata, limits.on_trailers)
    listen(server, RecvRequest, auditor.on_request)
    listen(server, RecvMessage, auditor.on_message)
    listen(server, SendTrailingMetadata, auditor.on_trailers)


def secure_cookies(settings: Settings) -> bool:
    """Session cookies are `Secure` when the edge serves HTTPS itself or is told that
    browsers reach it over HTTPS (`JETSCAN_PUBLIC_URL=https://...`, behind a proxy)."""
    return bool(settings.tls_cert) or settings.public_url.lower().startswith("https:")


async def serve(settings: Settings, stop: asyncio.Event, *, health_interval: float = 2.0) -> None:
    scope = Scope.parse(settings.scope)
    messages.install()
    bus = await Bus.connect(settings.nats_url, creds=settings.nats_creds_for("edge"))
    tokens = TokenCache()
    readiness = Readiness(bus, interval=health_interval)
    health_task: asyncio.Task[None] | None = None
    grpc_server: Server | None = None
    http: _HttpServer | None = None
    http_task: asyncio.Task[None] | None = None
    try:
        await tokens.start(bus.js)
        scan_service = ScanService(bus, scope, Capabilities.of(settings))
        report_service = ReportService(bus, settings.public_url or f"http://{settings.http_addr}")
        schedule_service = ScheduleService(bus, scope, Capabilities.of(settings))
        api = {
            "jetscan.v1.ScanService": scan_service,
            "jetscan.v1.ReportService": report_service,
            "jetscan.v1.ScheduleService": schedule_service,
        }
        services = with_reflection([*api.values(), Health(readiness.checks(api))])
        grpc_server = Server(services)
        limits = RateLimits(
            {"StartScan": settings.start_rate, "GenerateReport": settings.report_rate}
        )
        _hooks(grpc_server, tokens, limits, Auditor(bus.js))
        sessions = SessionStore(
            tokens,
            secure=secure_cookies(settings),
            idle=timedelta(minutes=settings.portal_idle_minutes),
        )
        await sessions.start(bus.js)
        portal = Portal(
            bus,
            sessions,
            readiness,
            scan_service,
            schedule_service,
            report_service,
            limits,
            str(settings.grpc_addr),
            settings.public_url,
        )
        await readiness.check_once()
        health_task = asyncio.create_task(readiness.run(), name="edge-health")
        tls = server_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
        await grpc_server.start(settings.grpc_addr.host, settings.grpc_addr.port, ssl=tls)
        http = _HttpServer(
            uvicorn.Config(
                create_app(portal, tokens),
                host=settings.http_addr.host,
                port=settings.http_addr.port,
                log_config=None,
                lifespan="off",
                ws_per_message_deflate=False,
                # Console WebSockets run until their scan ends: on stop they are told
                # (1012) and given this long before their tasks are cancelled.
                timeout_graceful_shutdown=3,
                ssl_certfile=settings.tls_cert or None,
                ssl_keyfile=settings.tls_key or None,
            )
        )
        http_task = asyncio.create_task(http.serve(), name="edge-http")
        log.info("gRPC on %s, HTTP on %s", settings.grpc_addr, settings.http_addr)
        await stop.wait()
    finally:
        if http is not None and http_task is not None:
            http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(http_task, 5)
        if grpc_server is not None:
            grpc_server.close()
            await grpc_server.wait_closed()
        if health_task is not None:
            health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health_task
        await tokens.stop()
        await bus.close()
