"""Ingest parks a result that is not the one its scan's start command asked for."""

from __future__ import annotations

import json

import msgspec
import nats
import pytest
from nats.js.api import DeliverPolicy

from contracts import subjects, wire
from contracts.findings import Finding
from contracts.gen.jetscan import v1
from tests.conftest import Stack, scan_service, wait_status
from tests.handlers.test_lifecycle import _scan_findings, nmap_request, nmap_result

pytestmark = pytest.mark.slow


async def test_a_result_for_another_target_or_tool_is_parked_not_stored(
    stack: Stack, open_port: int
) -> None:
    async with scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
    before = await _scan_findings(stack, started.id)
    forged_finding = msgspec.convert(
        {
            "tool": "nmap",
            "fingerprint": "forged",
            "severity": "high",
            "title": "forged",
            "host": "127.0.0.9",
        },
        Finding,
    )
    genuine = nmap_result(started.id, findings=(forged_finding,))
    forged = [
        (
            subjects.scan_result("nmap", started.id),
            msgspec.structs.replace(genuine, target="127.0.0.9"),
        ),
        (subjects.scan_result("nmap", "someoneelse"), genuine),
        (subjects.scan_result("sslyze", started.id), genuine),
    ]
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        parked = await js.subscribe(
            "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>",
            stream="PARKED",
            deliver_policy=DeliverPolicy.NEW,
        )
        seqs = set()
        for subject, result in forged:
            seqs.add((await js.publish(subject, wire.encode(result))).seq)
        while seqs:
            advisory = json.loads((await parked.next_msg(timeout=30)).data)
            if advisory["stream"] == "RESULTS":
                seqs.discard(advisory["stream_seq"])
        await parked.unsubscribe()
    finally:
        await nc.drain()
    assert await _scan_findings(stack, started.id) == before
