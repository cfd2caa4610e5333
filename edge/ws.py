"""The WebSocket console: `GET /ws/scans/{id}` streams a scan's `Feed` as JSON text frames.

Frames: `{"type":"line","seq":N,"time":...,"stream":"stdout"|"stderr","text":...}`,
`{"type":"status","scan":{...}}` on every lifecycle change (the last frame is the terminal
one), and `{"type":"behind","after_seq":N,...}` before a close for falling behind.

Close codes:
- 1000 the scan ended and every line and the final status were sent
- 1011 jetscan failed inside (the client may retry)
- 1013 the client fell behind (or a service the console needs is down): reconnect with
  `?after_seq=N` to resume after the last line received
- 4400 bad request: an invalid scan id or `after_seq`
- 4401 no token (header, `?token=` or a portal session cookie), or an unknown, revoked or
  expired one; also when the token is revoked or expires while the console is open (within
  the token watch's latency), or its portal session is signed out (within `SESSION_POLL`)
- 4403 the token's role may not watch scans, or the handshake's `Origin` is another site
  (cross-site WebSocket hijacking)
- 4404 no such scan (and, from `edge.web`, any other WebSocket path)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import msgspec
from grpclib import GRPCError
from grpclib.const import Status
from starlette.websockets import WebSocket, WebSocketDisconnect

from contracts import subjects
from contracts.auth import Role, token_key
from contracts.output import OutputLine, Stream
from contracts.scans import ScanView
from edge.auth import TokenCache, bearer
from edge.bus import Bus
from edge.live import MAX_SEQ, Feed, Frame
from edge.portal.security import own_origin, same_origin
from edge.portal.sessions import SessionStore, SessionUnavailable

log = logging.getLogger(__name__)

NORMAL = 1000
INTERNAL = 1011
TRY_AGAIN = 1013
BAD_REQUEST = 4400
UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404

_CLOSE = {
    Status.NOT_FOUND: NOT_FOUND,
    Status.INVALID_ARGUMENT: BAD_REQUEST,
    Status.UNAVAILABLE: TRY_AGAIN,
}
# Seconds a socket may refuse a frame before its viewer counts as fallen behind.
STALL_TIMEOUT = 10.0
# Seconds the last frames (a "behind" frame, the close) may wait for a client to read.
GOODBYE_TIMEOUT = 30.0


class LineFrame(msgspec.Struct, frozen=True, tag="line", tag_field="type"):
    seq: int
    time: datetime
    stream: Stream
    text: str


class StatusFrame(msgspec.Struct, frozen=True, tag="status", tag_field="type"):
    scan: ScanView


class BehindFrame(msgspec.Struct, frozen=True, tag="behind", tag_field="type"):
    after_seq: int
    message: str


_encoder = msgspec.json.Encoder()


def encode(frame: Frame) -> str:
    if isinstance(frame, OutputLine):
        out: Any = LineFrame(frame.seq, frame.time, frame.stream, frame.text)
    else:
        out = StatusFrame(frame)
    return _encoder.encode(out).decode()


class ConsoleSocket:
    """The endpoint, with what it needs passed in (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        tokens: TokenCache,
        *,
        stall_timeout: float = STALL_TIMEOUT,
        max_buffered: int | None = None,
        sessions: SessionStore | None = None,
        public_url: str = "",
    ) -> None:
        self.bus = bus
        self.tokens = tokens
        self.sessions = sessions
        self.public_url = public_url
        self.stall_timeout = stall_timeout
        self.feed_options: dict[str, Any] = (
            {} if max_buffered is None else {"max_buffered": max_buffered}
        )

    async def _credential(self, ws: WebSocket) -> tuple[str, bool, tuple[int, str] | None]:
        """The hash of the token this socket acts for, or why it may not open.

        A browser sends `Origin` on every handshake: one from another site is refused before
        its cookies count (cross-site WebSocket hijacking). The token comes from the
        `Authorization` header or `?token=`, else from the portal's session cookie (then the
        second value is True: the socket also ends with the session)."""
        origin = ws.headers.get("origin")
        if origin is not None:
            scheme = "https" if ws.url.scheme == "wss" else "http"
            own = own_origin(ws.headers, scheme, self.public_url)
            if same_origin({"origin": origin}, own) is not None:
                return "", False, (FORBIDDEN, "cross-origin WebSocket refused")
        token = _token(ws)
        key = token_key(token) if token else ""
        by_session = False
        if not key and self.sessions is not None:
            try:
                session = await self.sessions.find(ws)
            except SessionUnavailable:
                return "", False, (TRY_AGAIN, "the sessions bucket did not answer")
            key = session.principal.key if session is not None else ""
            by_session = bool(key)
        record = self.tokens.lookup_key(key) if key else None
        if record is None:
            return "", False, (UNAUTHENTICATED, "missing, unknown or revoked token")
        if not record.role.allows(Role.VIEWER):
            return "", False, (FORBIDDEN, f"role {record.role.value} may not watch scans")
        return key, by_session, None

    async def handle(self, ws: WebSocket) -> None:
        # Close codes can only be sent on an accepted socket.
        await ws.accept()
        key, by_session, refusal = await self._credential(ws)
        if refusal is None:
            refusal = await self._serve(ws, key, by_session)
        code, reason = refusal
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await asyncio.wait_for(ws.close(code, reason[:120]), GOODBYE_TIMEOUT)

    async def _ended(self, ws: WebSocket, key: str, by_session: bool) -> None:
        """Return when the socket's credential ends: its token revoked or expired, or, for
        a portal session, the session signed out or deleted."""
        if not by_session or self.sessions is None:
            await self.tokens.invalidated_key(key)
            return
        revoked = asyncio.ensure_future(self.tokens.invalidated_key(key))
        signed_out = asyncio.ensure_future(self.sessions.ended(ws))
        try:
            await asyncio.wait({revoked, signed_out}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            revoked.cancel()
            signed_out.cancel()

    async def _serve(self, ws: WebSocket, key: str, by_session: bool = False) -> tuple[int, str]:
        try:
            scan_id = subjects.token(ws.path_params["id"])
            after = int(ws.query_params.get("after_seq", "0"))
            if not 0 <= after <= MAX_SEQ:
                raise ValueError(after)
        except ValueError:
            return BAD_REQUEST, "bad scan id or after_seq"
        feed = Feed(self.bus, scan_id, after, **self.feed_options)
        closed = asyncio.create_task(_until_closed(ws))
        sending = asyncio.create_task(self._send(ws, feed, after))
        revoked = asyncio.create_task(self._ended(ws, key, by_session))
        tasks = {closed, sending, revoked}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if sending in done:
                return sending.result()
            if revoked in done:
                return UNAUTHENTICATED, "signed out, or token revoked or expired"
            return NORMAL, "client went away"
        except GRPCError as exc:
            return _CLOSE.get(exc.status, INTERNAL), exc.message or exc.status.name
        except Exception:
            log.exception("console of scan %s failed", scan_id)
            return INTERNAL, "internal error"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled():
                    task.exception()  # retrieved: a client that left mid-send is normal

    async def _send(self, ws: WebSocket, feed: Feed, after: int) -> tuple[int, str]:
        last = after
        frames = feed.frames()
        loop = asyncio.get_running_loop()
        dog = _Watchdog(self.stall_timeout)
        try:
            async for frame in frames:
                dog.since = loop.time()
                await ws.send_text(encode(frame))
                dog.since = None
                if isinstance(frame, OutputLine):
                    last = frame.seq
        except asyncio.CancelledError:
            if not dog.fired or dog.task.uncancel():
                raise
            message = f"fell behind; reconnect with ?after_seq={last} to resume"
            behind = BehindFrame(after_seq=last, message=message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    ws.send_text(_encoder.encode(behind).decode()), GOODBYE_TIMEOUT
                )
            return TRY_AGAIN, "fell behind"
        finally:
            dog.close()
            await frames.aclose()  # type: ignore[attr-defined]
        return NORMAL, "scan ended"


class _Watchdog:
    """Cancels the current task once a frame has waited `timeout` seconds to be sent.

    One timer for the socket's life instead of an `asyncio.timeout` per frame: arming and
    cancelling a timer per line was ~15% of the edge's CPU in `bench stream`. The sender
    sets `since` before each send and clears it after; the timer, when it finds no send
    older than `timeout`, sleeps until the current one (or one starting now) would be.
    """

    def __init__(self, timeout: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.since: float | None = None
        self.fired = False
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._handle = self._loop.call_later(timeout, self._check)

    def _check(self) -> None:
        since, now = self.since, self._loop.time()
        if since is not None and now - since >= self._timeout:
            self.fired = True
            self.task.cancel()
            return
        self._handle = self._loop.call_at(
            (now if since is None else since) + self._timeout, self._check
        )

    def close(self) -> None:
        self._handle.cancel()


def _token(ws: WebSocket) -> str:
    return bearer(ws.headers.get("authorization")) or ws.query_params.get("token") or ""


async def _until_closed(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends until it closes."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
