"""At-least-once handling of one JetStream message: effect, then ack; or nak, or park.

Decode failures can never succeed, so they are terminated at once (JetStream's
MSG_TERMINATED advisory lands in the PARKED stream). Anything else is retried after the
consumer's next `nak_delay`; after `max_deliver` attempts JetStream gives up and its
MAX_DELIVERIES advisory lands in PARKED too. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage as Injected
from faststream.nats.message import NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import subjects, tracing, wire
from handlers import metrics
from handlers.topology import ConsumerSpec, Topology

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[NatsMessage], Awaitable[None]]
# Characters of a parking reason that reach the advisory (it travels in the ack's payload).
MAX_REASON = 1000


def durable_subscriber(
    broker: NatsBroker, topo: Topology, durable: str, *, batch_size: int = 16, max_workers: int = 1
) -> Callable[[Any], Any]:
    """Bind a handler to a durable consumer that `streams.yaml` declares; `max_workers` > 1
    handles that many messages at once (no order between them)."""
    spec = topo.consumer(durable)
    # Only when asked: FastStream's concurrent subscriber replaces the in-order one.
    concurrency: dict[str, Any] = {"max_workers": max_workers} if max_workers > 1 else {}
    subscriber: Callable[[Any], Any] = broker.subscriber(
        spec.filter_subject,
        stream=JStream(spec.stream, declare=False),
        durable=durable,
        # A pull with room for more waits out its whole timeout when messages trickle in
        # (nats-py collects until the batch is full), so latency-bound consumers use
        # batch_size=1. Shorter timeouts were tried: pulls expiring every 0.1 s lost
        # deliveries to the expiry race, which then waited out ack_wait.
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        **concurrency,
        # FastStream ignores the connection's inbox prefix here; the role's NATS user may
        # read replies on its own prefix only (durables are named `<role>-...`).
        inbox_prefix=(subjects.role_inbox(durable.split("-")[0]) + ".").encode(),
    )
    return subscriber


def one_by_one(
    broker: NatsBroker, topo: Topology, durable: str, *, span: str = "", max_workers: int = 1
) -> Callable[[Handler], Handler]:
    """Bind `work(msg)` to a durable consumer, pulled a message at a time, and `settle` each
    message by it; with `span`, in a consumer span of that name continuing the message's
    trace. One message per pull: these consumers are latency-bound (see `durable_subscriber`).
    """
    spec = topo.consumer(durable)

    def bind(work: Handler) -> Handler:
        @durable_subscriber(broker, topo, durable, batch_size=1, max_workers=max_workers)
        async def on_message(msg: Injected) -> None:
            async def run() -> None:
                await work(msg)

            if not span:
                await settle(msg, spec, run)
                return
            with tracing.span(span, msg.headers, kind=tracing.CONSUMER):
                await settle(msg, spec, run)

        return work

    return bind


async def park(raw: Msg, reason: str) -> None:
    """Terminate `raw` with `reason`: nats-server (2.11+) copies a `+TERM <reason>` into the
    MSG_TERMINATED advisory that PARKED keeps, so `jetscan parked list` can say why.
    """
    if raw._ackd or not raw.reply:
        return
    text = " ".join(reason.split())[:MAX_REASON] or "unprocessable"
    await raw._client.publish(raw.reply, b"+TERM " + text.encode())
    raw._ackd = True


def delivered(msg: NatsMessage) -> int:
    meta = getattr(msg.raw_message, "metadata", None)
    return int(meta.num_delivered) if meta is not None else 1


class Unprocessable(Exception):
    """A message that no redelivery can apply: `settle` parks it at once."""


async def settle(msg: NatsMessage, spec: ConsumerSpec, work: Callable[[], Awaitable[None]]) -> str:
    """Run `work` and ack, or nak, or park the message; return which (`metrics.MESSAGES`)."""
    outcome = "parked"
    if delivered(msg) > 1:
        metrics.REDELIVERIES.labels(spec.durable).inc()
    try:
        await work()
    except wire.UNDECODABLE as exc:
        log.error("parking undecodable message on %s: %s", msg.raw_message.subject, exc)
        await park(msg.raw_message, f"undecodable: {exc}")
        await msg.reject()
    except Unprocessable as exc:
        log.error("parking %s: %s", msg.raw_message.subject, exc)
        await park(msg.raw_message, str(exc))
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
        outcome = "retried"
    else:
        await msg.ack()
        outcome = "acked"
    metrics.MESSAGES.labels(spec.durable, outcome).inc()
    return outcome


@dataclass
class Linger:
    """How long a batch waits for company once its first message is there.

    A message that finds the consumer idle is settled at once. One that arrives within
    `busy_within` seconds of the previous batch belongs to a burst: the batch then waits
    `wait` seconds for the rest of it, so a burst costs a few SQL statements, pulls and
    commits instead of one each per handful of messages. Measured with `python -m bench
    start` at 16 clients: batches of ~5 commands became ~45 and ingest's CPU per command fell
    from ~150 to ~55 us (PostgreSQL's from ~65 to ~13 us); the price is at most `wait`
    more before a message of a burst is projected.
    """

    wait: float = 0.02
    busy_within: float = 0.1
    last_settled: float = -math.inf

    def before_rest(self, now: float) -> float:
        """Seconds to wait, at `now`, before pulling what else has arrived."""
        return self.wait if now - self.last_settled < self.busy_within else 0.0


async def consume_batches(
    js: JetStreamContext,
    spec: ConsumerSpec,
    decode: Callable[[bytes], T],
    work: Callable[[list[T]], Awaitable[None]],
    *,
    max_batch: int = 256,
    linger: Linger | None = None,
) -> None:
    """Pull up to `max_batch` messages as soon as the first is there (waiting a moment for
    the rest of a burst, see `Linger`), apply one effect to all of them, then ack each (or
    nak all, or park the undecodable). Runs until cancelled.

    Plain nats-py, not FastStream: its batch mode lost deliveries when a fetch timed out.
    Here one subscription lives for the whole loop, so a message delivered to an expired
    pull waits in its pending queue for the next fetch instead of for `ack_wait`.
    """
    linger = linger or Linger()
    loop = asyncio.get_running_loop()
    sub = await js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
    try:
        while True:
            try:
                msgs = await sub.fetch(1, timeout=5)
            except TimeoutError:  # nats-py raises both its own and the builtin one
                continue
            wait = linger.before_rest(loop.time())
            if wait:
                await asyncio.sleep(wait)
            # Whatever else is already there: a no-wait pull, so this does not linger.
            with contextlib.suppress(TimeoutError):
                msgs += await sub.fetch(max_batch - 1, timeout=0.05)
            await _settle_batch(msgs, spec, decode, work)
            linger.last_settled = loop.time()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _settle_batch(
    msgs: list[Msg],
    spec: ConsumerSpec,
    decode: Callable[[bytes], T],
    work: Callable[[list[T]], Awaitable[None]],
) -> None:
    items: list[T] = []
    good: list[Msg] = []
    for raw in msgs:
        try:
            items.append(decode(raw.data))
        except wire.UNDECODABLE as exc:
            log.error("parking undecodable message on %s: %s", raw.subject, exc)
            await park(raw, f"undecodable: {exc}")
            metrics.MESSAGES.labels(spec.durable, "parked").inc()
            continue
        good.append(raw)
    if not items:
        return
    try:
        await work(items)
    except Exception as exc:
        attempt = max(int(m.metadata.num_delivered) for m in good)
        delay = spec.nak_delay(attempt)
        log.warning("retrying %d messages in %.0fs (#%d): %r", len(good), delay, attempt, exc)
        for raw in good:
            await raw.nak(delay=delay)
        metrics.MESSAGES.labels(spec.durable, "retried").inc(len(good))
    else:
        for raw in good:
            await raw.ack()
        metrics.MESSAGES.labels(spec.durable, "acked").inc(len(good))
