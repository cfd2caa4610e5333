"""The JSON format: the snapshot itself, with its sha256, never truncated."""

from __future__ import annotations

import msgspec

from contracts.reports import Frozen

_encoder = msgspec.json.Encoder(order="deterministic")


class JsonReport(msgspec.Struct, frozen=True):
    snapshot_sha256: str
    snapshot: object


def render(frozen: Frozen) -> bytes:
    data = _encoder.encode(JsonReport(frozen.sha256, frozen.snapshot))
    return msgspec.json.format(data, indent=2) + b"\n"
