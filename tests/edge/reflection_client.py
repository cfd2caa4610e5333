"""A generic gRPC client, as grpcurl works: discover through reflection, call from JSON.

Run as its own process (`python -m tests.edge.reflection_client`): grpcio installs fork
handlers that deadlock a test process which later forks servers.

    python -m tests.edge.reflection_client HOST:PORT list
    python -m tests.edge.reflection_client HOST:PORT describe
    python -m tests.edge.reflection_client HOST:PORT call SERVICE/METHOD JSON|- [TOKEN]
    python -m tests.edge.reflection_client HOST:PORT --compression gzip|deflate call ...
    python -m tests.edge.reflection_client HOST:PORT raw SERVICE/METHOD HEX [TOKEN]

Prints one JSON object: {"services": [...]}, {"methods": [...]}, {"reply": {...}} or
{"code": "UNAUTHENTICATED", "details": "..."}.
"""

from __future__ import annotations

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

_COMPRESSION = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}


def main(argv: list[str]) -> dict[str, object]:
    compression = None
    if "--compression" in argv:
        at = argv.index("--compression")
        compression = _COMPRESSION[argv[at + 1]]
        argv = argv[:at] + argv[at + 2 :]
    target, action, *rest = argv
    with grpc.insecure_channel(target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(db)
        if action == "list":
            return {"services": sorted(db.get_services())}
        if action == "describe":
            methods = [
                f"{name}/{m.name}:{m.input_type.full_name}"
                for name in db.get_services()
                if name.startswith("jetscan.")
                for m in pool.FindServiceByName(name).methods
            ]
            return {"methods": sorted(methods)}
        if action == "raw":  # bytes as given (hex), not a message built from JSON
            method, request_hex, *token = rest
            raw = channel.unary_unary(
                f"/{method}", request_serializer=bytes.fromhex, response_deserializer=bytes
            )
            metadata = [("authorization", f"Bearer {token[0]}")] if token else []
            try:
                return {"reply_hex": raw(request_hex, metadata=metadata, timeout=10).hex()}
            except grpc.RpcError as err:
                return {"code": err.code().name, "details": err.details()}
        method, request_json, *token = rest
        if request_json == "-":  # too big for an argument
            request_json = sys.stdin.read()
        service_name, method_name = method.rsplit("/", 1)
        m = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        req_cls = message_factory.GetMessageClass(m.input_type)
        resp_cls = message_factory.GetMessageClass(m.output_type)
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )
        metadata = [("authorization", f"Bearer {token[0]}")] if token else []
        try:
            reply = call(
                json_format.Parse(request_json, req_cls()),
                metadata=metadata,
                timeout=10,
                compression=compression,
            )
        except grpc.RpcError as err:
            return {"code": err.code().name, "details": err.details()}
        return {"reply": json_format.MessageToDict(reply)}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1:])) + "\n")
