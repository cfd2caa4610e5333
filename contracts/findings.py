"""Findings: the one normalised shape every scanner's parser produces."""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import msgspec


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(Severity)}


class Finding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One issue or observation about a target, as a parser reports it.

    `fingerprint` identifies the same finding across rescans of the same target: it is
    built from where the finding is (host:port, URL + parameter, certificate + check),
    never from volatile text such as dates or request ids.
    """

    tool: str
    severity: Severity
    title: str
    fingerprint: str
    description: str = ""
    host: str = ""
    port: int | None = None
    protocol: str = ""
    url: str = ""
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    references: tuple[str, ...] = ()


def fingerprint(tool: str, *parts: str | int | None) -> str:
    """A stable identity for a finding: sha256 over the tool and its location parts."""
    text = "\x1f".join([tool, *("" if p is None else str(p) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()
