"""Opaque page tokens (AIP-158): the sort key of the last row of the previous page.

A token is bound to the filter it was issued for, so reusing it with another filter is
an error instead of a silently wrong page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


class PageTokenError(ValueError):
    """A page token that this service did not issue, or issued for another filter."""


def filter_hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def encode_token(fhash: str, *key: object) -> str:
    raw = msgspec.json.encode([fhash, *key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, fhash: str, *types: type) -> tuple[Any, ...]:
    """The sort key in `token`, each part decoded as the matching type in `types`."""
    shape: Any = tuple.__class_getitem__((str, *types))
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        issued_for, *key = msgspec.json.decode(raw, type=shape)
    except (ValueError, msgspec.DecodeError) as exc:
        raise PageTokenError("page_token is not a token this service issued") from exc
    if issued_for != fhash:
        raise PageTokenError("page_token was issued for a different filter")
    return tuple(key)


def trim(
    rows: list[T], size: int, fhash: str, key: Callable[[T], tuple[object, ...]]
) -> tuple[list[T], str]:
    """`size + 1` rows read → the page and the token of the next one ("" on the last page)."""
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    return rows, encode_token(fhash, *key(rows[-1]))


def window(
    requested: int, page_token: str, fhash: str, *types: type
) -> tuple[int, tuple[Any, ...] | None]:
    """A list request's page size and the sort key to continue after (None: from the top);
    ValueError naming what is wrong."""
    return page_size(requested), decode_token(page_token, fhash, *types) if page_token else None


def page_size(requested: int) -> int:
    if requested < 0:
        raise ValueError("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
