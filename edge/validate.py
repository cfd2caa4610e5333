"""StartScan validation at the edge: `scanners.requests` with its refusals as gRPC statuses.

Nothing reaches the bus unless all of it passes.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from grpclib import GRPCError
from grpclib.const import Status

from contracts import subjects
from contracts.scans import ScanView, StartScan
from scanners import TOOLS, requests
from scanners.errors import ConfigError, OutOfScope, RequestError, TargetError, Unsupported
from scanners.requests import Capabilities, ValidScan
from scanners.scope import Scope
from scanners.targets import TargetKind, domain_key, parse_target

# Printable ASCII without spaces: request ids travel in a NATS header.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_SCAN_IDS = uuid.UUID("6a657473-6361-6e2d-7363-616e2d696473")


def require_id(field: str, value: str) -> str:
    """An id from a request that must name a scan, finding or report: one subject token."""
    if not value:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{field}: required")
    try:
        return subjects.token(value)
    except ValueError:
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"{field}: must be 1-128 of A-Z a-z 0-9 _ -"
        ) from None


def optional_id(field: str, value: str) -> str:
    """`require_id` for an id filter that may be left out ("")."""
    return require_id(field, value) if value else ""


def invalid(field: str, reason: str) -> GRPCError:
    return GRPCError(Status.INVALID_ARGUMENT, f"{field}: {reason}")


def validate_start(
    tool: str,
    target: str,
    config: dict[str, Any],
    deadline_seconds: int,
    scope: Scope,
    capabilities: Capabilities,
) -> ValidScan:
    """`scanners.requests.validate_start`, its refusals as gRPC errors naming the field."""
    try:
        return requests.validate_start(
            tool, target, config, deadline_seconds, scope, capabilities=capabilities
        )
    except OutOfScope as exc:
        raise GRPCError(Status.PERMISSION_DENIED, str(exc)) from None
    except Unsupported as exc:
        raise GRPCError(Status.FAILED_PRECONDITION, str(exc)) from None
    except (RequestError, TargetError, ConfigError) as exc:
        raise invalid(exc.field, exc.reason) from None


def request_id(value: str) -> str:
    if value and not _REQUEST_ID.fullmatch(value):
        raise invalid("request_id", "must be 1-128 printable ASCII characters without spaces")
    return value


def list_filters(domain: str, tool: str) -> tuple[str, str]:
    """ListScans' `domain` as scans are stored under it, and `tool`, checked.

    Scans of an address are stored under its network (`127.0.0.1/32`, see `Target.domain`),
    so `127.0.0.1` asks for that; names compare lowercased, without a trailing dot. An unknown
    tool is an error: it could only ever list nothing.
    """
    if tool and tool not in TOOLS:
        known = ", ".join(sorted(TOOLS))
        raise invalid("tool", f"unknown tool {tool!r}; expected one of {known}")
    return domain_key(domain), tool


def target_filter(field: str, text: str) -> str:
    """A `target` filter as StartScan stores targets (`Example.COM.` -> `example.com`, a CIDR
    with host bits set -> its network), "" as "" (no filter); INVALID_ARGUMENT naming `field`
    for text no scan could have as its target."""
    if not text:
        return ""
    try:
        return parse_target(
            text, allowed_kinds=set(TargetKind), ipv4_min_prefix=0, ipv6_min_prefix=0
        ).value
    except TargetError as exc:
        raise invalid(field, exc.reason) from None


def time_range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, ...]:
    """`since` and `until` of a list request as aware datetimes (a Timestamp is UTC), or
    INVALID_ARGUMENT naming `until` when the range is empty."""
    since, until = (t if t is None or t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    if since is not None and until is not None and since >= until:
        raise invalid("until", "must be after since")
    return since, until


def same_request(earlier: ScanView, cmd: StartScan) -> ScanView:
    """The scan a request id named before, if `cmd` asks for the same; else ALREADY_EXISTS.

    A retry must not be answered with a different scan than it asked for: the client would
    think its new parameters were accepted.
    """
    asked = (cmd.tool, cmd.target, cmd.config, cmd.deadline_seconds)
    recorded = (earlier.tool, earlier.target, earlier.config, earlier.deadline_seconds)
    if asked != recorded:
        raise GRPCError(
            Status.ALREADY_EXISTS,
            f"request_id: already used for scan {earlier.id} ({earlier.tool} {earlier.target})"
            " with other parameters; use a new request_id for a different scan",
        )
    return earlier


def scan_id(principal_key: str, request_id: str) -> str:
    """Deterministic per (caller, request_id), so a retried StartScan names the same scan."""
    if not request_id:
        return uuid.uuid4().hex
    return uuid.uuid5(_SCAN_IDS, f"{principal_key}\x1f{request_id}").hex
