"""Compressed request messages (edge/compression.py): what inflates, what is refused and how."""

from __future__ import annotations

import gzip
import zlib

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from edge.compression import inflate

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
