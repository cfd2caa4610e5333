"""At-least-once handling of one JetStream message: effect, then ack; or nak, or park.

Decode failures can never succeed, so they are terminated at once (JetStream's
MSG_TERMINATED advisory lands in the PARKED stream). Anything else is retried after the
consumer's next `nak_delay`; after `max_deliver` attempts JetStream gives up and its
MAX_DELIVERIES advisory lands in PARKED too. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage

from handlers.topology import ConsumerSpec, Topology

log = logging.getLogger(__name__)


def durable_subscriber(
    broker: NatsBroker, topo: Topology, durable: str, *, batch_size: int = 16
) -> Callable[[Any], Any]:
    """Bind a handler to a durable consumer that `streams.yaml` declares."""
    spec = topo.consumer(durable)
    return broker.subscriber(
        spec.filter_subject,
        stream=JStream(spec.stream, declare=False),
        durable=durable,
        # A pull with room for more waits out its whole timeout when messages trickle in
        # (nats-py collects until the batch is full), so latency-bound consumers use
        # batch_size=1. Shorter timeouts were tried: pulls expiring every 0.1 s lost
        # deliveries to the expiry race, which then waited out ack_wait.
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
    )


def delivered(msg: NatsMessage) -> int:
    meta = getattr(msg.raw_message, "metadata", None)
    return int(meta.num_delivered) if meta is not None else 1


async def settle(msg: NatsMessage, spec: ConsumerSpec, work: Callable[[], Awaitable[None]]) -> None:
    try:
        await work()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.error("parking undecodable message on %s: %s", msg.raw_message.subject, exc)
        await msg.reject()
    except Exception as exc:
        attempt = delivered(msg)
        # A condition expected to clear soon (the scan's command or result is about to be
        # projected) retries after its own short delay, doubling each time.
        quick = getattr(exc, "retry_after", None)
        delay = quick * 2 ** (attempt - 1) if quick else spec.nak_delay(attempt)
        log.warning(
            "retrying %s in %.0fs (attempt %d of %d): %r",
            msg.raw_message.subject,
            delay,
            attempt,
            spec.max_deliver,
            exc,
        )
        await msg.nack(delay=delay)
    else:
        await msg.ack()
