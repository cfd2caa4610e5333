"""Batch consumption (handlers/delivery.py) on a real JetStream: lingering on bursts."""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from handlers.delivery import Linger, consume_batches
from handlers.topology import ConsumerSpec


async def memory_stream(js: JetStreamContext, prefix: str) -> ConsumerSpec:
    """A new in-memory stream of one subject, with an explicit-ack durable consumer "d"."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    subject = f"{prefix.lower()}.{name}"
    await js.add_stream(StreamConfig(name=name, subjects=[subject], storage=StorageType.MEMORY))
    await js.add_consumer(
        name,
        ConsumerConfig(durable_name="d", filter_subject=subject, ack_policy=AckPolicy.EXPLICIT),
    )
    return ConsumerSpec(
        stream=name, durable="d", filter_subject=subject, ack_wait="30s", max_deliver=3
    )


def test_an_idle_consumer_settles_at_once() -> None:
    linger = Linger(wait=0.02, busy_within=0.1)
    assert linger.before_rest(now=1000.0) == 0.0  # never settled anything
    linger.last_settled = 1000.0
    assert linger.before_rest(now=1000.5) == 0.0  # the last batch is long gone


def test_a_message_right_behind_a_batch_waits_for_the_rest_of_the_burst() -> None:
    linger = Linger(wait=0.02, busy_within=0.1, last_settled=1000.0)
    assert linger.before_rest(now=1000.01) == 0.02
    assert linger.before_rest(now=1000.0999) == 0.02
    assert linger.before_rest(now=1000.1) == 0.0
    assert Linger().last_settled == -math.inf


async def test_a_burst_is_settled_in_fewer_batches_than_messages(nc: Client) -> None:
    js = nc.jetstream()
    spec = await memory_stream(js, "LINGER")
    name, subject = spec.stream, spec.filter_subject
    batches: list[list[int]] = []
    settled = asyncio.Event()

    async def work(items: list[int]) -> None:
        batches.append(items)
        settled.set()

    # A long wait makes the burst below arrive inside it however slow this machine is.
    consumer = asyncio.create_task(
        consume_batches(js, spec, int, work, linger=Linger(wait=0.5, busy_within=30.0))
    )
    try:
        await js.publish(subject, b"0")
        await asyncio.wait_for(settled.wait(), 10)
        for i in range(1, 31):
            await js.publish(subject, str(i).encode())
        while sum(map(len, batches)) < 31:
            settled.clear()
            await asyncio.wait_for(settled.wait(), 10)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await js.delete_stream(name)
    assert batches[0] == [0]
    assert sorted(i for batch in batches[1:] for i in batch) == list(range(1, 31))
    # Without the wait, each pull finds the one or two messages published so far.
    assert len(batches) - 1 <= 3, [len(b) for b in batches]


class _Item(msgspec.Struct):
    n: int
    note: str = ""


async def test_an_undecodable_message_is_parked_and_the_rest_of_its_batch_applied(
    nc: Client,
) -> None:
    # Invalid UTF-8 inside a JSON string is msgspec's UnicodeDecodeError, not its DecodeError:
    # it once escaped the batch and ended the consumer's loop.
    js = nc.jetstream()
    spec = await memory_stream(js, "PARK")
    name, subject = spec.stream, spec.filter_subject
    worked: list[int] = []
    done = asyncio.Event()

    async def work(items: list[_Item]) -> None:
        worked.extend(i.n for i in items)
        if 3 in worked:
            done.set()

    bodies = (b'{"n": 1}', b'{"n": 2, "note": "\xff"}', b"{not", b'{"n": "two"}', b'{"n": 3}')
    for body in bodies:
        await js.publish(subject, body)
    consumer = asyncio.create_task(
        consume_batches(js, spec, msgspec.json.Decoder(_Item).decode, work)
    )
    try:
        await asyncio.wait_for(done.wait(), 10)
        info = await js.consumer_info(name, "d")
        while info.num_ack_pending:
            await asyncio.sleep(0.05)
            info = await js.consumer_info(name, "d")
        assert not consumer.done()
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await js.delete_stream(name)
    assert worked == [1, 3]
    assert info.num_pending == 0 and info.num_redelivered == 0
