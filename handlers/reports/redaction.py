"""Secrets in scanner evidence (ZAP copies request and response headers) never reach a report."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# Header lines whose value is a credential; matched anywhere in a text (evidence is often a
# whole request or response).
_HEADER = re.compile(
    r"(?im)^([ \t]*(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|"
    r"x-auth-token|x-csrf-token|x-xsrf-token|api-key|x-amz-security-token)[ \t]*:[ \t]*)(.*)$"
)
# Evidence fields that hold nothing but such a value.
_KEYS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)


def redact_text(text: str) -> str:
    return _HEADER.sub(lambda m: m[1] + REDACTED, text)


def redact(value: Any) -> Any:
    """`value` (decoded JSON) with every secret header value replaced by `[redacted]`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if k.lower() in _KEYS and isinstance(v, str) and v else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
