"""What jetscan's metrics and tracing add to one gRPC call at the edge, in CPU per call.

Throughput benches (`bench start`) swing ±30% on a shared machine, far more than the few
microseconds measured here, so this one isolates them. It runs, in one task per call as
grpclib does, what the edge's server does around a StartScan: grpclib's RecvRequest dispatch
(with an auth-like listener, which the edge had before), the handler's publish headers, and
the SendTrailingMetadata dispatch:

- before: the RecvRequest listener only, no trailers listener (grpclib then skips that
  dispatch), headers as a plain dict: the edge as it was.
- off: plus the hooks `edge/server.py` installs (`edge.metrics.GrpcMetrics`) and the headers
  through `tracing.inject`, tracing off: what every deployment pays.
- traced: the same with tracing on (`workers.telemetry`): a server span per call exported
  over OTLP/HTTP to a receiver in its own process (`bench/otlp.py`); its CPU counts, the
  exporter's thread included.

The baseline of the same run is a whole StartScan call on a bare grpclib server in this
process (`rpc`, client and server CPU, as `bench start`'s echo side). Each figure is the
minimum over `--rounds` (the least disturbed by other load); `*_added_us` is what a side
adds over before, `*_of_rpc` that as a share of the bare call, and `*_of_edge_start_scan`
of the edge's CPU per accepted StartScan (about 515 us, docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.events import RecvRequest, SendTrailingMetadata, _DispatchServerEvents, listen
from grpclib.server import Server
from multidict import MultiDict

from bench.otlp import receiver_process
from bench.processes import free_port
from bench.start import EchoScans
from contracts import tracing
from contracts.gen.jetscan import v1
from edge.metrics import GrpcMetrics

SIDES = ("before", "off", "traced")
EDGE_CPU_PER_START_US = 515.0
METHOD = "/jetscan.v1.ScanService/StartScan"


async def _rpc_cpu_us(calls: int) -> float:
    server = Server([EchoScans()])
    port = free_port()
    await server.start("127.0.0.1", port)
    channel = Channel("127.0.0.1", port)
    try:
        stub = v1.ScanServiceStub(channel)
        request = v1.StartScanRequest(target="127.0.0.1", tool="nmap", request_id="r")
        for _ in range(200):
            await stub.start_scan(request)
        cpu = time.process_time()
        for _ in range(calls):
            await stub.start_scan(request)
        return (time.process_time() - cpu) / calls * 1e6
    finally:
        channel.close()
        server.close()
        await server.wait_closed()


class _Target:
    """What grpclib's `listen` takes: a server's event dispatcher, here without the server."""

    def __init__(self) -> None:
        self.__dispatch__ = _DispatchServerEvents()


async def _auth(event: RecvRequest) -> None:
    """Stands for the edge's token check, which listened on RecvRequest before."""


async def _hooks_cpu_us(side: str, calls: int) -> float:
    target = _Target()
    dispatch = target.__dispatch__
    if side != "before":
        hooks = GrpcMetrics()
        listen(target, RecvRequest, hooks.on_request)
        listen(target, SendTrailingMetadata, hooks.on_trailers)
    listen(target, RecvRequest, _auth)
    inject = side != "before"

    async def call() -> None:
        metadata = MultiDict([("authorization", "Bearer x")])
        await dispatch.recv_request(
            metadata,
            _auth,
            method_name=METHOD,
            deadline=None,
            content_type="application/grpc",
            user_agent=None,
            peer=None,
        )
        headers = {"Nats-Msg-Id": "scan-x-start"}
        if inject:
            headers = tracing.inject(headers)
        await dispatch.send_trailing_metadata(
            MultiDict(), status=Status.OK, status_message=None, status_details=None
        )

    for _ in range(200):
        await asyncio.create_task(call())
    cpu = time.process_time()
    for _ in range(calls):
        await asyncio.create_task(call())
    return (time.process_time() - cpu) / calls * 1e6


async def _bench(rounds: int, calls: int) -> dict[str, Any]:
    from workers.telemetry import start_tracing

    hooks: dict[str, list[float]] = {side: [] for side in SIDES}
    rpc: list[float] = []
    async with receiver_process() as (endpoint, tally):
        for _ in range(rounds):
            rpc.append(await _rpc_cpu_us(max(calls // 10, 200)))
            for side in SIDES:
                stop = start_tracing(endpoint if side == "traced" else "", "bench-overhead")
                try:
                    hooks[side].append(await _hooks_cpu_us(side, calls))
                finally:
                    stop()
    best = {side: min(v) for side, v in hooks.items()}
    rpc_best = min(rpc)
    added = {side: best[side] - best["before"] for side in ("off", "traced")}
    return {
        "bench": "overhead",
        "calls_per_round": calls,
        "rounds": rounds,
        "rpc_cpu_us": round(rpc_best, 1),
        "hooks_cpu_us": {side: round(v, 2) for side, v in best.items()},
        "every_round": {side: [round(x, 2) for x in v] for side, v in hooks.items()}
        | {"rpc": [round(x, 1) for x in rpc]},
        "off_added_us": round(added["off"], 2),
        "traced_added_us": round(added["traced"], 2),
        "off_of_rpc": round(added["off"] / rpc_best, 4),
        "traced_of_rpc": round(added["traced"] / rpc_best, 4),
        "off_of_edge_start_scan": round(added["off"] / EDGE_CPU_PER_START_US, 4),
        "traced_of_edge_start_scan": round(added["traced"] / EDGE_CPU_PER_START_US, 4),
        "spans_exported": tally.get("spans", 0),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000, help="per side and round")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_bench(args.rounds, args.calls))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
