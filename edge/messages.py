"""How the edge reads request messages: strictly, compressed or not, and bounded.

grpclib's server hands a message's bytes to the message class. For jetscan's betterproto2
classes that is not enough: betterproto2 reads a field sent with the wrong wire type into
the field anyway (an int in a string field), accepts a length prefix running past the end
of the data, and fails on invalid UTF-8 with an exception grpclib reports as UNKNOWN. So
each jetscan request is first read by protobuf's own parser (upb) from the same
descriptors, which refuses malformed bytes and invalid UTF-8; what betterproto2 then reads
is upb's re-encoding without unknown fields, so it only ever sees well-formed data of the
declared types. A request that does not parse is INVALID_ARGUMENT, naming its type and why.

gRPC clients may also compress what they send (grpcio with `compression=grpc.Compression.
Gzip`, grpc-java and grpc-go with a compressor set): the message's prefix byte says so, and
the algorithm is gzip or deflate (zlib format) in every implementation. grpclib 0.4 raises
NotImplementedError on such a message, which reached the client as UNKNOWN "Internal Server
Error". Here gzip and deflate are inflated (told apart by their headers, as grpclib does not
hand the request's `grpc-encoding` to a method) and the rest answered as the gRPC
compression spec asks: UNIMPLEMENTED for an unknown algorithm, with a `grpc-accept-encoding`
header naming the ones the edge reads, INTERNAL for data that does not inflate.

Every request message is bounded at 4 MiB, before and after inflating (gRPC's default
receive limit; grpclib has none), so a small compressed message cannot expand into
gigabytes. `install()` makes grpclib's server module read messages with `recv_message`.
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Any

import betterproto2
import grpclib.server
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtobufMessage
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.encoding.base import CodecBase

from edge.reflection import merged_pool

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
ACCEPT_ENCODING = "identity,deflate,gzip"
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


@functools.cache
def _strict_class(message_type: type[betterproto2.Message]) -> type[ProtobufMessage]:
    """protobuf's own class for a betterproto2 message type, from the same descriptor."""
    name: str = getattr(message_type, "DESCRIPTOR").full_name  # noqa: B009 (generated static)
    found: type[ProtobufMessage] = message_factory.GetMessageClass(
        merged_pool().FindMessageTypeByName(name)
    )
    return found


def well_formed(data: bytes, message_type: Any) -> bytes:
    """`data` as upb re-encodes it for a betterproto2 `message_type`; other types as they are."""
    if not (isinstance(message_type, type) and issubclass(message_type, betterproto2.Message)):
        return data  # protobuf's own classes (health, reflection) parse strictly themselves
    strict = _strict_class(message_type)
    try:
        parsed = strict.FromString(data)
    except DecodeError as exc:
        raise GRPCError(
            Status.INVALID_ARGUMENT,
            f"request: not a well-formed {strict.DESCRIPTOR.full_name} ({exc})",
        ) from None
    parsed.DiscardUnknownFields()
    clean: bytes = parsed.SerializeToString()
    return clean


async def recv_message(stream: Any, codec: CodecBase, message_type: Any) -> Any:
    """grpclib.stream.recv_message, plus inflating, a size bound and strict parsing."""
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
        try:
            data = inflate(data)
        except GRPCError as exc:
            if exc.status is Status.UNIMPLEMENTED:
                _announce_encodings(stream)
            raise
    return codec.decode(well_formed(data, message_type), message_type)


def _announce_encodings(stream: Any) -> None:
    """Add `grpc-accept-encoding` to the next headers `stream` sends: the refusal's.

    grpclib refuses `grpc-` keys as metadata, and the answer to an unreadable request is
    sent before any other headers (trailers-only), so the header goes in below grpclib's
    metadata check, on this one request's HTTP/2 stream.
    """
    send_headers = stream.send_headers

    async def with_accept_encoding(
        headers: list[tuple[str, str]], end_stream: bool = False
    ) -> None:
        stream.send_headers = send_headers
        await send_headers([*headers, ("grpc-accept-encoding", ACCEPT_ENCODING)], end_stream)

    stream.send_headers = with_accept_encoding


def install() -> None:
    """Make grpclib's server read messages with `recv_message` (idempotent)."""
    grpclib.server.recv_message = recv_message  # type: ignore[attr-defined]
