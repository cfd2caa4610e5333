"""streams.yaml: JetStream streams, durable consumers and buckets, applied idempotently."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_SIZE = re.compile(r"^(\d+)(B|KiB|MiB|GiB|TiB)?$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


class TopologyError(Exception):
    """streams.yaml is malformed or names something inconsistent."""


def duration(text: str | int | float) -> float:
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise TopologyError(f"bad duration {text!r} (expected e.g. 30s, 2m, 24h, 7d)")
    return float(m[1]) * _SECONDS[m[2]]


def size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise TopologyError(f"bad size {text!r} (expected e.g. 512MiB, 2GiB)")
    return int(m[1]) * _BYTES[m[2] or "B"]


class StreamSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    subjects: list[str]
    max_age: str
    max_bytes: str
    duplicate_window: str
    description: str = ""
    max_msg_size: str = "1MiB"


class ConsumerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream: str
    durable: str
    filter_subject: str
    ack_wait: str
    max_deliver: int
    nak_delays: list[str] = []
    max_ack_pending: int = 1000

    def nak_delay(self, delivered: int) -> float:
        """Seconds before redelivering a message that failed on attempt `delivered`."""
        if not self.nak_delays:
            return duration(self.ack_wait)
        return duration(self.nak_delays[min(delivered, len(self.nak_delays)) - 1])


class KeyValueSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bucket: str
    max_bytes: str
    description: str = ""
    history: int = 1
    ttl: str = ""


class ObjectStoreSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bucket: str
    max_bytes: str
    description: str = ""


class Topology(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    streams: list[StreamSpec]
    consumers: list[ConsumerSpec]
    key_value: list[KeyValueSpec] = []
    object_stores: list[ObjectStoreSpec] = []
    replicas: int = 1

    def consumer(self, durable: str) -> ConsumerSpec:
        for c in self.consumers:
            if c.durable == durable:
                return c
        raise TopologyError(f"streams.yaml has no consumer {durable!r}")

    def stream_config(self, s: StreamSpec) -> StreamConfig:
        return StreamConfig(
            name=s.name,
            description=s.description or None,
            subjects=list(s.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=duration(s.max_age),
            max_bytes=size(s.max_bytes),
            max_msg_size=size(s.max_msg_size),
            duplicate_window=duration(s.duplicate_window),
            num_replicas=self.replicas,
            allow_direct=True,
        )

    def consumer_config(self, c: ConsumerSpec) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=c.durable,
            filter_subject=c.filter_subject,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=duration(c.ack_wait),
            max_deliver=c.max_deliver,
            max_ack_pending=c.max_ack_pending,
        )


def default_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "streams.yaml", here.parent / "streams.yaml"):
        if candidate.exists():
            return candidate
    raise TopologyError(f"streams.yaml not found next to {here}")


def load(path: Path | None = None) -> Topology:
    path = path or default_path()
    try:
        raw = yaml.safe_load(path.read_text())
        topo = msgspec.convert(raw, Topology)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise TopologyError(f"{path}: {exc}") from exc
    _check(topo)
    return topo


def _check(topo: Topology) -> None:
    from contracts.subjects import matches

    names = {s.name for s in topo.streams}
    for s in topo.streams:  # parse every value once, so a typo fails at load
        duration(s.max_age), duration(s.duplicate_window), size(s.max_bytes), size(s.max_msg_size)
    for c in topo.consumers:
        if c.stream not in names:
            raise TopologyError(f"consumer {c.durable!r} names unknown stream {c.stream!r}")
        stream = next(s for s in topo.streams if s.name == c.stream)
        # Wildcards in the filter match the stream's patterns as literal tokens.
        if not any(matches(pat, c.filter_subject) for pat in stream.subjects):
            raise TopologyError(
                f"consumer {c.durable!r} filter {c.filter_subject!r} is outside {c.stream}"
            )
        duration(c.ack_wait), [duration(d) for d in c.nak_delays]


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.action} {self.kind} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


def _diff(current: Any, desired: Any, fields: list[str]) -> list[str]:
    out = []
    for f in fields:
        have, want = getattr(current, f), getattr(desired, f)
        if isinstance(want, float) and isinstance(have, int | float):
            same = abs(have - want) < 1e-6
        else:
            same = have == want
        if not same:
            out.append(f"{f} {have!r} -> {want!r}")
    return out


_STREAM_FIELDS = [
    "description",
    "subjects",
    "retention",
    "storage",
    "discard",
    "max_age",
    "max_bytes",
    "max_msg_size",
    "duplicate_window",
    "num_replicas",
    "allow_direct",
]
_CONSUMER_FIELDS = [
    "filter_subject",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
]


async def apply(js: JetStreamContext, topo: Topology) -> list[Change]:
    """Create what is missing and update what differs; return what changed."""
    changes: list[Change] = []
    for spec in topo.streams:
        want = topo.stream_config(spec)
        try:
            have = (await js.stream_info(spec.name)).config
        except NotFoundError:
            await js.add_stream(want)
            changes.append(Change("stream", spec.name, "created"))
            continue
        diff = _diff(have, want, _STREAM_FIELDS)
        if diff:
            await js.update_stream(want)
            changes.append(Change("stream", spec.name, "updated", "; ".join(diff)))
    for c in topo.consumers:
        want_c = topo.consumer_config(c)
        try:
            have_c = (await js.consumer_info(c.stream, c.durable)).config
        except NotFoundError:
            await js.add_consumer(c.stream, want_c)
            changes.append(Change("consumer", f"{c.stream}/{c.durable}", "created"))
            continue
        diff = _diff(have_c, want_c, _CONSUMER_FIELDS)
        if diff:
            await js.add_consumer(c.stream, want_c)
            changes.append(
                Change("consumer", f"{c.stream}/{c.durable}", "updated", "; ".join(diff))
            )
    for kv in topo.key_value:
        changes.extend(await _apply_kv(js, kv, topo.replicas))
    for ob in topo.object_stores:
        changes.extend(await _apply_object_store(js, ob, topo.replicas))
    return changes


async def _apply_kv(js: JetStreamContext, spec: KeyValueSpec, replicas: int) -> list[Change]:
    want = KeyValueConfig(
        bucket=spec.bucket,
        description=spec.description or None,
        history=spec.history,
        ttl=duration(spec.ttl) if spec.ttl else None,
        max_bytes=size(spec.max_bytes),
        storage=StorageType.FILE,
        replicas=replicas,
        # Reads are direct gets, the only kind the roles' NATS users may make (see
        # handlers.permissions); without it nats-py asks STREAM.MSG.GET, which they may not.
        direct=True,
    )
    stream = f"KV_{spec.bucket}"
    try:
        have = (await js.stream_info(stream)).config
    except NotFoundError:
        await js.create_key_value(want)
        return [Change("kv", spec.bucket, "created")]
    desired = StreamConfig(
        description=want.description,
        max_msgs_per_subject=spec.history,
        max_age=want.ttl or 0.0,
        max_bytes=want.max_bytes,
        num_replicas=replicas,
        allow_direct=True,
    )
    fields = ["description", "max_msgs_per_subject", "max_age", "max_bytes", "allow_direct"]
    diff = _diff(have, desired, fields)
    if not diff:
        return []
    await js.update_stream(
        have.evolve(
            description=desired.description,
            max_msgs_per_subject=desired.max_msgs_per_subject,
            max_age=desired.max_age,
            max_bytes=desired.max_bytes,
            allow_direct=True,
        )
    )
    return [Change("kv", spec.bucket, "updated", "; ".join(diff))]


async def _apply_object_store(
    js: JetStreamContext, spec: ObjectStoreSpec, replicas: int
) -> list[Change]:
    try:
        await js.object_store(spec.bucket)
    except (BucketNotFoundError, NotFoundError):
        await js.create_object_store(
            spec.bucket,
            config=ObjectStoreConfig(
                description=spec.description or None,
                max_bytes=size(spec.max_bytes),
                storage=StorageType.FILE,
                replicas=replicas,
            ),
        )
        return [Change("object store", spec.bucket, "created")]
    have = (await js.stream_info(f"OBJ_{spec.bucket}")).config
    diff = _diff(have, StreamConfig(max_bytes=size(spec.max_bytes)), ["max_bytes"])
    if not diff:
        return []
    await js.update_stream(have.evolve(max_bytes=size(spec.max_bytes)))
    return [Change("object store", spec.bucket, "updated", "; ".join(diff))]
