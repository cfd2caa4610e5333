from __future__ import annotations

from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from contracts import subjects
from handlers import topology
from workers.embedded import NatsServer

TOPO = topology.load()

# Every subject something publishes to JetStream, one example per builder.
PUBLISHED = [
    subjects.scan_start("s1"),
    subjects.scan_cancel("s1"),
    subjects.report_generate("r1"),
    subjects.schedule_upsert("c1"),
    subjects.schedule_delete("c1"),
    subjects.finding_triage("f1"),
    subjects.schedule_run("c1"),
    *(subjects.scan_event("s1", st) for st in ("queued", "running", "succeeded", "timed_out")),
    subjects.report_event("r1", "ready"),
    subjects.scan_output("s1"),
    subjects.scan_results("nmap"),
    subjects.scan_result("nmap", "s1"),
    subjects.audit("grpc", "StartScan"),
    subjects.audit("cli", "token-revoke"),
]


@pytest.fixture
async def fresh_nats(tmp_path: Path) -> Client:
    server = NatsServer(tmp_path, port=0)
    url = await server.start()
    client = await nats.connect(url)
    yield client
    await client.drain()
    await server.stop()


async def test_applying_twice_changes_nothing(fresh_nats: Client) -> None:
    js = fresh_nats.jetstream()
    first = await topology.apply(js, TOPO)
    assert {c.action for c in first} == {"created"}
    assert len(first) == (
        len(TOPO.streams) + len(TOPO.consumers) + len(TOPO.key_value) + len(TOPO.object_stores)
    )
    assert await topology.apply(js, TOPO) == []


async def test_a_changed_limit_is_updated_and_reported(fresh_nats: Client) -> None:
    js = fresh_nats.jetstream()
    await topology.apply(js, TOPO)
    import msgspec

    changed = msgspec.structs.replace(
        TOPO,
        streams=[
            msgspec.structs.replace(s, max_age="1d") if s.name == "OUTPUT" else s
            for s in TOPO.streams
        ],
    )
    changes = await topology.apply(js, changed)
    assert [str(c) for c in changes] == ["updated stream OUTPUT: max_age 259200.0 -> 86400.0"]
    assert (await js.stream_info("OUTPUT")).config.max_age == 86400
    assert await topology.apply(js, changed) == []


async def test_a_bucket_made_without_direct_gets_is_given_them(fresh_nats: Client) -> None:
    # Buckets made before jetscan asked for direct gets: nats-py then reads them with
    # STREAM.MSG.GET, which no role's NATS user may publish (see handlers.permissions).
    from nats.js.api import KeyValueConfig

    js = fresh_nats.jetstream()
    await js.create_key_value(KeyValueConfig(bucket="heartbeats", history=1, ttl=600))
    assert not (await js.stream_info("KV_heartbeats")).config.allow_direct
    changes = [str(c) for c in await topology.apply(js, TOPO)]
    assert any(c.startswith("updated kv heartbeats: ") and "allow_direct" in c for c in changes)
    assert (await js.stream_info("KV_heartbeats")).config.allow_direct
    for kv in TOPO.key_value:
        assert (await js.stream_info(f"KV_{kv.bucket}")).config.allow_direct, kv.bucket
    assert await topology.apply(js, TOPO) == []


def test_streams_do_not_overlap() -> None:
    pats = [(s.name, p) for s in TOPO.streams for p in s.subjects]
    for i, (a_name, a) in enumerate(pats):
        for b_name, b in pats[i + 1 :]:
            assert not subjects.overlaps(a, b), f"{a_name} {a} overlaps {b_name} {b}"


@pytest.mark.parametrize("subject", PUBLISHED + [c.filter_subject for c in TOPO.consumers])
def test_every_subject_is_covered_by_exactly_one_stream(subject: str) -> None:
    owners = [s.name for s in TOPO.streams if any(subjects.matches(p, subject) for p in s.subjects)]
    assert len(owners) == 1, f"{subject} is stored by {owners}"


def test_every_consumer_filter_is_one_published_subject_family() -> None:
    for c in TOPO.consumers:
        assert any(subjects.matches(c.filter_subject, s) for s in PUBLISHED), c.durable


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "streams: []\nconsumers: [{stream: NOPE, durable: x, filter_subject: a,"
            " ack_wait: 1s, max_deliver: 1}]",
            "unknown stream",
        ),
        (
            "streams: [{name: A, subjects: [a.>], max_age: 1y, max_bytes: 1MiB,"
            " duplicate_window: 1m}]\nconsumers: []",
            "bad duration",
        ),
        ("streams: []\nconsumers: []\nbogus: 1", "unknown field"),
    ],
)
def test_malformed_topology_is_refused(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "streams.yaml"
    path.write_text(text)
    with pytest.raises(topology.TopologyError, match=error):
        topology.load(path)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("2m", 120), ("24h", 86400), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert topology.duration(text) == seconds


def test_sizes() -> None:
    assert topology.size("1GiB") == 1 << 30
    assert topology.size("256KiB") == 256 << 10
    with pytest.raises(topology.TopologyError):
        topology.size("1GB")
