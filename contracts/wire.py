"""JSON codecs shared by every publisher and consumer (built once, at import)."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

# What decoding JSON bytes can raise for bad input. msgspec reports invalid UTF-8 inside a
# string as UnicodeDecodeError, not as its DecodeError (of which ValidationError is one).
UNDECODABLE: tuple[type[Exception], ...] = (msgspec.DecodeError, UnicodeDecodeError)


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


class ServiceError(msgspec.Struct, frozen=True, kw_only=True):
    """A query's failure, carried in the micro API's `Nats-Service-Error` headers."""

    code: int
    description: str
