"""Headers on every HTTP response of the edge, and the same-origin test of state changes.

`SecurityHeaders` is plain ASGI, outermost: it also covers error pages, static files,
redirects, report downloads and a refused WebSocket handshake (sent as an HTTP response).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_NAMES = {name for name, _ in HEADERS}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            # `http.response.start`, or a refused handshake's `websocket.http.response.start`
            if message["type"].endswith("response.start"):
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message["headers"] = [*kept, *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origin(headers: Headers, scheme: str, public_url: str) -> str:
    """This site's origin: the public URL's when one is set (behind a proxy), else the
    scheme it is served on and the Host the browser asked for."""
    if public_url:
        return origin_of(public_url)
    return f"{scheme}://{headers.get('host', '')}".lower()


def same_origin(headers: Headers | Mapping[str, str], own: str) -> str | None:
    """None when a state-changing request comes from this site; else why not.

    A browser sends `Origin` on every POST and WebSocket handshake, and `Sec-Fetch-Site` on
    every request; each one present must say same-origin, and one must be present.
    """
    origin = headers.get("origin")
    site = headers.get("sec-fetch-site")
    if origin is None and site is None:
        return "no Origin or Sec-Fetch-Site header"
    if origin is not None and origin.lower() != own:
        return f"cross-origin request from {origin[:80]!r}"
    if site is not None and site.lower() != "same-origin":
        return f"Sec-Fetch-Site is {site[:40]!r}"
    return None
