"""Compressed request messages, which grpclib's server does not read on its own.

gRPC clients may compress what they send (grpcio with `compression=grpc.Compression.Gzip`,
grpc-java and grpc-go with a compressor set): the message's prefix byte says so, and the
algorithm is gzip or deflate (zlib format) in every implementation. grpclib 0.4 raises
NotImplementedError on such a message, which reached the client as UNKNOWN "Internal Server
Error". `install()` swaps the message reader grpclib's server module uses for `recv_message`
below, which inflates gzip and deflate (told apart by their headers, as grpclib does not hand
the request's `grpc-encoding` to a method) and answers the rest as the gRPC compression spec
asks: UNIMPLEMENTED for an unknown algorithm, INTERNAL for data that does not inflate.

It also bounds every request message at 4 MiB, before and after inflating (gRPC's default
receive limit; grpclib has none), so a small compressed message cannot expand into gigabytes.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import grpclib.server
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.encoding.base import CodecBase

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_PREFIX = struct.Struct(">?I")  # compressed flag, message length
_GZIP_MAGIC = b"\x1f\x8b"


def _window_bits(data: bytes) -> int | None:
    """zlib's wbits for `data`'s format: gzip, zlib ("deflate" in gRPC), or None."""
    if data[:2] == _GZIP_MAGIC:
        return 16 + zlib.MAX_WBITS
    if len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0:
        return zlib.MAX_WBITS
    return None


def inflate(data: bytes, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """A compressed message's bytes, or the GRPCError the client should get instead."""
    wbits = _window_bits(data)
    if wbits is None:
        raise GRPCError(
            Status.UNIMPLEMENTED,
            "message compression: only gzip and deflate are supported",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise GRPCError(Status.INTERNAL, f"compressed message does not inflate: {exc}") from None
    if len(out) > limit:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED, f"message: larger than {limit} bytes once inflated"
        )
    if not inflater.eof:
        raise GRPCError(Status.INTERNAL, "compressed message is cut short")
    return out


async def recv_message(stream: Any, codec: CodecBase, message_type: Any) -> Any:
    """grpclib.stream.recv_message, plus inflating and a size bound."""
    prefix = await stream.recv_data(_PREFIX.size)
    if not prefix:
        return None
    if len(prefix) < _PREFIX.size:
        raise GRPCError(Status.INTERNAL, "message prefix cut short")
    compressed, length = _PREFIX.unpack(prefix)
    if length > MAX_MESSAGE_BYTES:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"message: {length} bytes, more than the {MAX_MESSAGE_BYTES} accepted",
        )
    data = await stream.recv_data(length)
    if len(data) != length:
        raise GRPCError(Status.INTERNAL, "message cut short")
    if compressed:
        data = inflate(data)
    return codec.decode(data, message_type)


def install() -> None:
    """Make grpclib's server read messages with `recv_message` (idempotent)."""
    grpclib.server.recv_message = recv_message  # type: ignore[attr-defined]
