"""Server reflection over jetscan's services and the standard ones.

betterproto2 keeps jetscan's descriptors in a private pool; grpclib's health and
reflection descriptors live in protobuf's default pool. Reflection answers from one pool,
so jetscan's files are copied into the default one (after the well-known types they
import, which the default pool already has or gets from their `_pb2` modules).
"""

from __future__ import annotations

from typing import Any

# The _pb2 imports register the well-known types jetscan's files import.
from google.protobuf import (  # noqa: F401
    descriptor_pool,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
)
from grpclib.reflection.service import ServerReflection

from contracts.gen.google_proto_descriptor_pool import default_google_proto_descriptor_pool

JETSCAN_FILES = ("jetscan/v1/scan.proto", "jetscan/v1/report.proto", "jetscan/v1/schedule.proto")


def merged_pool() -> Any:
    pool = descriptor_pool.Default()
    for name in JETSCAN_FILES:
        try:
            pool.FindFileByName(name)
        except KeyError:
            source = default_google_proto_descriptor_pool.FindFileByName(name)
            pool.AddSerializedFile(source.serialized_pb)
    return pool


def with_reflection(services: list[Any]) -> list[Any]:
    return list(ServerReflection.extend(services, pool=merged_pool()))
