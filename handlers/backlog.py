"""Consumer lag and parked messages, read from JetStream every few seconds into the
`jetscan_consumer_*`, `jetscan_queue_depth` and `jetscan_parked_messages` gauges.

Each role watches the durable consumers named after it (`launcher-...`, `ingest-...`), so a
replica reports what its own role is behind on; ingest also watches PARKED. Reading consumer
info costs one JetStream API request per consumer, which is why it is periodic and not per
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from nats.errors import Error as NatsError

from handlers import metrics, topology

log = logging.getLogger(__name__)

QUEUE = "launcher-scan-commands"
PARKED_STREAM = "PARKED"


async def read_once(nc: Client, consumers: list[topology.ConsumerSpec], parked: bool) -> None:
    js = nc.jetstream()
    for spec in consumers:
        try:
            info = await js.consumer_info(spec.stream, spec.durable, timeout=2)
        except (TimeoutError, NatsError) as exc:
            log.debug("consumer info of %s: %r", spec.durable, exc)
            continue
        pending = info.num_pending or 0
        metrics.CONSUMER_PENDING.labels(spec.durable).set(pending)
        metrics.CONSUMER_ACK_PENDING.labels(spec.durable).set(info.num_ack_pending or 0)
        metrics.CONSUMER_REDELIVERED.labels(spec.durable).set(info.num_redelivered or 0)
        if spec.durable == QUEUE:
            metrics.QUEUE_DEPTH.set(pending + (info.num_ack_pending or 0))
    if parked:
        with contextlib.suppress(TimeoutError, NatsError):
            state = (await js.stream_info(PARKED_STREAM)).state
            metrics.PARKED.set(state.messages)


async def watch(nc: Client, role: str, stop: asyncio.Event, interval: float = 5.0) -> None:
    """Refresh the gauges of `role`'s consumers until `stop` is set or `nc` closes."""
    topo = topology.load()
    mine = [c for c in topo.consumers if c.durable.startswith(role + "-")]
    while not stop.is_set() and not nc.is_closed:
        try:
            await read_once(nc, mine, parked=role == "ingest")
        except Exception:
            log.exception("reading consumer info failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


_watching: set[asyncio.Task[None]] = set()


def start(nc: Client, role: str, stop: asyncio.Event) -> None:
    """Run `watch` in the background; it ends by itself with `stop` or the connection."""
    task = asyncio.create_task(watch(nc, role, stop), name=f"{role}-backlog")
    _watching.add(task)
    task.add_done_callback(_watching.discard)
