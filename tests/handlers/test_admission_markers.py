"""The admission bucket holds what waits, not every scan there ever was: the delete marker a
claimed `waiting.<id>` key leaves is purged once old, on a real JetStream, without touching a
key created again since (a retry)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError

from contracts.scans import StartScan
from handlers.admission import Waiting, waiting_key
from handlers.launcher.queue import AdmissionQueue
from tests.handlers.test_kubernetes_executor import until


def waiting(scan_id: str) -> Waiting:
    cmd = StartScan(
        scan_id=scan_id,
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config={},
        deadline_seconds=60,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )
    return Waiting(cmd=cmd)


async def test_old_delete_markers_are_purged_and_a_key_made_again_is_kept(nc: Client) -> None:
    js = nc.jetstream()
    bucket = f"admission-{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1))
    launched: list[str] = []

    async def launch(w: Waiting) -> str:
        launched.append(w.cmd.scan_id)
        return "launched"

    queue = AdmissionQueue(kv, launch, max_running=100, per_target=0, js=js, bucket=bucket)
    await queue.open()
    try:
        ids = [uuid.uuid4().hex for _ in range(6)]
        for scan_id in ids:
            assert await queue.enqueue(waiting(scan_id))
        await until(lambda: sorted(launched) == sorted(ids))
        await until(lambda: set(queue.mirror.markers) == set(ids))
        info = await js.stream_info(f"KV_{bucket}")
        # `slots` and one delete marker per launched scan.
        assert info.state.messages == 1 + len(ids), info.state
        # Younger than the age purged: kept.
        assert await queue.purge_markers() == 0
        # The first scan runs again (its job was lost) while this launcher's mirror has not
        # seen it yet: its new key must survive the purge of its old marker.
        await queue.mirror.close()
        await kv.create(waiting_key(ids[0]), b"{}")
        assert await queue.purge_markers(timedelta(0)) == len(ids)
    finally:
        await queue.close()
    info = await js.stream_info(f"KV_{bucket}")
    assert info.state.messages == 2, info.state  # `slots` and the retry's key
    assert (await kv.get(waiting_key(ids[0]))).value == b"{}"
    for scan_id in ids[1:]:
        with pytest.raises(KeyNotFoundError):
            await kv.get(waiting_key(scan_id))
    await js.delete_key_value(bucket)
