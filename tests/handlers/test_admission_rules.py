"""The pure parts of admission and retries: rounds, limits, positions, what counts as jetscan's
own loss, liveness' verdict, and the settings that configure them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.scans import ScanStatus, StartScan
from contracts.settings import SettingsError, default_max_running, load
from handlers.admission import (
    Slots,
    Waiting,
    admit,
    fair_order,
    freed,
    position,
    round_for,
    taken,
)
from handlers.ingest.liveness import lost
from handlers.launcher.lifecycle import JOB_NATS, JOB_SCANNER_FAILED, Stop, infrastructure_loss

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def cmd(scan_id: str, by: str, at: int, target: str = "127.0.0.1") -> StartScan:
    return StartScan(
        scan_id=scan_id,
        target=target,
        domain=target,
        tool="nmap",
        config={},
        deadline_seconds=60,
        requested_by=by,
        requested_at=T0 + timedelta(seconds=at),
    )


def enqueue(queue: list[Waiting], c: StartScan, current: int = 0) -> None:
    queue.append(Waiting(cmd=c, round=round_for(c.requested_by, queue, current)))


def test_a_burst_does_not_starve_a_late_requester() -> None:
    queue: list[Waiting] = []
    for i in range(5):
        enqueue(queue, cmd(f"a{i}", "alice", i))
    # Alice's first scan launched (round 0); Bob asks after all of Alice's.
    slots = taken(
        Slots(), admit(fair_order(queue), Slots(), max_running=1, per_target=0), owner="x", now=T0
    )
    assert list(slots.held) == ["a0"] and slots.round == 0
    queue = [w for w in queue if w.cmd.scan_id != "a0"]
    enqueue(queue, cmd("b0", "bob", 10), current=slots.round)
    enqueue(queue, cmd("c0", "carol", 11), current=slots.round)
    order = [w.cmd.scan_id for w in fair_order(queue)]
    assert order == ["b0", "c0", "a1", "a2", "a3", "a4"]
    assert position(queue, "b0") == 1 and position(queue, "a4") == 6


def test_rounds_alternate_requesters_oldest_first() -> None:
    queue: list[Waiting] = []
    enqueue(queue, cmd("a0", "alice", 0))
    enqueue(queue, cmd("a1", "alice", 1))
    enqueue(queue, cmd("b0", "bob", 2))
    enqueue(queue, cmd("b1", "bob", 3))
    enqueue(queue, cmd("a2", "alice", 4))
    assert [w.cmd.scan_id for w in fair_order(queue)] == ["a0", "b0", "a1", "b1", "a2"]


def test_the_running_limit_and_the_per_target_limit() -> None:
    queue: list[Waiting] = []
    for i, target in enumerate(["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3"]):
        enqueue(queue, cmd(f"s{i}", f"r{i}", i, target))
    ordered = fair_order(queue)
    # The second scan of 127.0.0.1 waits; the ones behind it do not wait for it.
    chosen = admit(ordered, Slots(), max_running=3, per_target=1)
    assert [w.cmd.scan_id for w in chosen] == ["s0", "s2", "s3"]
    held = taken(Slots(), chosen, owner="x", now=T0)
    assert admit(ordered, held, max_running=8, per_target=1) == []
    assert [w.cmd.scan_id for w in admit(ordered, held, max_running=8, per_target=0)] == ["s1"]
    # No free slot, nothing admitted; a freed slot admits the next.
    assert admit(ordered, held, max_running=3, per_target=0) == []
    after = freed(held, "s0")
    assert after is not None and "s0" not in after.held
    left = [w for w in ordered if w.cmd.scan_id not in held.held]
    assert [w.cmd.scan_id for w in admit(left, after, max_running=3, per_target=1)] == ["s1"]


def test_freeing_names_the_attempt() -> None:
    held = taken(Slots(), [Waiting(cmd=cmd("s", "r", 0), attempt=2)], owner="x", now=T0)
    assert freed(held, "s", 1) is None
    assert freed(held, "nope") is None
    assert freed(held, "s", 2) == Slots(held={}, round=held.round)


@pytest.mark.parametrize(
    ("returncode", "stopped", "cause", "retried"),
    [
        (-9, None, "", True),  # the job was SIGKILLed by someone else: lost
        (137, None, "", True),
        (-15, Stop.SHUTDOWN, "", True),  # its launcher stopped
        (JOB_NATS, None, "", True),  # the job could not reach NATS
        (None, None, "lost", True),  # a Job that failed without a container's exit
        (0, None, "", False),
        (JOB_SCANNER_FAILED, None, "", False),  # the scanner's own failure
        (124, None, "", False),  # its deadline
        (-15, Stop.DEADLINE, "", False),
        (-15, Stop.CANCELLED, "", False),
        (137, None, "OOMKilled", False),
        (None, None, "ImagePullBackOff", False),
        (None, None, "Forbidden", False),
    ],
)
def test_which_ends_are_jetscans_own_loss(
    returncode: int | None, stopped: Stop | None, cause: str, retried: bool
) -> None:
    assert infrastructure_loss(returncode, stopped, cause=cause) is retried


def test_liveness_requeues_while_attempts_remain() -> None:
    again = lost("s", T0, attempts=1, max_attempts=2)
    assert (again.status, again.attempt) == (ScanStatus.QUEUED, 2)
    assert again.reason.startswith("retry: lost")
    final = lost("s", T0, attempts=2, max_attempts=2)
    assert final.status is ScanStatus.FAILED
    assert final.reason.startswith("lost") and final.reason.endswith("(attempt 2 of 2)")
    assert lost("s", T0, attempts=1, max_attempts=1).status is ScanStatus.FAILED


def test_admission_settings(tmp_path: Path) -> None:
    local = load({"JETSCAN_HOME": str(tmp_path)})
    assert local.max_running == default_max_running("local", os.cpu_count())
    assert (local.max_per_target, local.max_attempts) == (1, 2)
    kube = load({"JETSCAN_HOME": str(tmp_path), "JETSCAN_EXECUTOR": "kubernetes"})
    # Each attempt is a Job of its own: Kubernetes retries a lost scan as the local executor.
    assert (kube.max_running, kube.max_attempts) == (32, 2)
    assert default_max_running("local", 2) == 4 and default_max_running("local", 8) == 16
    set_ = load(
        {
            "JETSCAN_HOME": str(tmp_path),
            "JETSCAN_MAX_RUNNING": "3",
            "JETSCAN_MAX_PER_TARGET": "0",
            "JETSCAN_MAX_ATTEMPTS": "1",
        }
    )
    assert (set_.max_running, set_.max_per_target, set_.max_attempts) == (3, 0, 1)
    for variable, value in (
        ("JETSCAN_MAX_RUNNING", "0"),
        ("JETSCAN_MAX_RUNNING", "many"),
        ("JETSCAN_MAX_ATTEMPTS", "0"),
        ("JETSCAN_MAX_PER_TARGET", "-1"),
    ):
        with pytest.raises(SettingsError) as err:
            load({"JETSCAN_HOME": str(tmp_path), variable: value})
        assert err.value.variable == variable
