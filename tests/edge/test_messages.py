"""Compressed request messages (edge/compression.py): what inflates, what is refused and how."""

from __future__ import annotations

import gzip
import zlib

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from edge.messages import inflate, well_formed

MESSAGE = b"\x0a\x09127.0.0.1\x12\x04nmap" * 50


@pytest.mark.parametrize(
    "packed",
    [gzip.compress(MESSAGE), zlib.compress(MESSAGE), zlib.compress(MESSAGE, 9)],
    ids=["gzip", "deflate", "deflate-9"],
)
def test_gzip_and_deflate_inflate(packed: bytes) -> None:
    assert inflate(packed) == MESSAGE


def _refusal(packed: bytes, limit: int = 1 << 20) -> GRPCError:
    with pytest.raises(GRPCError) as caught:
        inflate(packed, limit)
    return caught.value


def test_an_unknown_algorithm_is_unimplemented() -> None:
    raw_deflate = zlib.compressobj(wbits=-15)
    packed = raw_deflate.compress(MESSAGE) + raw_deflate.flush()
    for data in (packed, b"\x04\x22\x4d\x18 lz4 frame", b"", b"\x1f"):
        error = _refusal(data)
        assert error.status is Status.UNIMPLEMENTED
        assert "gzip and deflate" in str(error.message)


def test_corrupt_or_truncated_data_is_internal() -> None:
    packed = gzip.compress(MESSAGE)
    corrupt = packed[:10] + bytes(b ^ 0xFF for b in packed[10:20]) + packed[20:]
    assert _refusal(corrupt).status is Status.INTERNAL
    cut = _refusal(zlib.compress(MESSAGE)[:-6])
    assert cut.status is Status.INTERNAL
    assert "cut short" in str(cut.message)


def test_a_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in ~8 KiB
    assert len(bomb) < 64 * 1024
    error = _refusal(bomb, limit=4 << 20)
    assert error.status is Status.RESOURCE_EXHAUSTED
    assert "larger than 4194304 bytes" in str(error.message)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff\xff", "Wire format was corrupt"),  # no such field or wire type
        (b"\x0a\x05ab", "Wire format was corrupt"),  # a length past the end
        (b"\x0a\x02\xff\xfe", "bad UTF-8"),  # target is not UTF-8
        (b"\x12\x03abc\x0d", "Wire format was corrupt"),  # a fixed32 cut short
    ],
    ids=["garbage", "length-past-end", "bad-utf8", "truncated-fixed32"],
)
def test_malformed_bytes_are_invalid_argument(data: bytes, reason: str) -> None:
    with pytest.raises(GRPCError) as caught:
        well_formed(data, v1.StartScanRequest)
    assert caught.value.status is Status.INVALID_ARGUMENT
    assert "not a well-formed jetscan.v1.StartScanRequest" in str(caught.value.message)
    assert reason in str(caught.value.message)


def test_a_field_sent_with_another_wire_type_is_dropped_not_misread() -> None:
    # target (field 1, a string) sent as the varint 150: betterproto2 alone reads target=150.
    misread: object = v1.StartScanRequest().parse(b"\x08\x96\x01").target
    assert misread == 150
    assert v1.StartScanRequest().parse(well_formed(b"\x08\x96\x01", v1.StartScanRequest)) == (
        v1.StartScanRequest()
    )


def test_well_formed_requests_read_the_same() -> None:
    request = v1.StartScanRequest(
        target="127.0.0.1",
        tool="nmap",
        config=Struct.from_dict({"ports": "22,80", "scripts": ["default"], "timing": 4}),
        request_id="r-1",
        deadline_seconds=60,
    )
    assert v1.StartScanRequest().parse(well_formed(bytes(request), v1.StartScanRequest)) == request
    # Unknown fields (from a newer client) are dropped.
    newer = bytes(request) + b"\xf8\x06\x01"  # field 111, varint 1
    assert v1.StartScanRequest().parse(well_formed(newer, v1.StartScanRequest)) == request
