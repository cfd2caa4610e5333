"""`jetscan schedule ...` as a user runs it, against the session's stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Stack, run_jetscan
from tests.handlers.test_scheduler import eventually
from tests.workers.test_usercli import env_for, one_line

pytestmark = pytest.mark.slow


async def test_schedule_commands_end_to_end(stack: Stack, tmp_path: Path) -> None:
    env = env_for(stack)
    targets = tmp_path / "targets.txt"
    targets.write_text("# hosts to watch\n127.0.0.3\n\n127.0.0.4  # the other one\n")
    code, out, err = await run_jetscan(
        env, "schedule", "create", "127.0.0.2", "--targets-file", str(targets),
        "--tool", "nmap", "--cron", "0 3 * * *", "--tz", "Europe/Berlin",
        "--set", "ports=22", "--overlap", "allow", "--catchup", "2h", "--jitter", "5m", "--json",
    )  # fmt: skip
    assert code == 0, err
    made = [json.loads(line) for line in out.splitlines()]
    assert [m["target"] for m in made] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert all(m["overlap"] == "allow" for m in made)
    assert all(m["catchupWindowSeconds"] == 7200 and m["jitterSeconds"] == 300 for m in made)
    first = made[0]["id"]

    async def listed() -> bool:
        code, out, _ = await run_jetscan(env, "schedule", "list", "--json", "--tool", "nmap")
        return code == 0 and {m["id"] for m in made} <= {
            json.loads(line)["id"] for line in out.splitlines()
        }

    await eventually(listed, within=30)
    code, out, err = await run_jetscan(env, "schedule", "get", first)
    assert code == 0, err
    assert "Europe/Berlin" in out and "next runs:" in out
    runs = out.split("next runs:\n")[1].splitlines()
    assert len(runs) == 5
    # Each line: UTC, then local time in the schedule's zone (03:00 CET or CEST).
    assert all("03:00 CE" in line and line.strip().endswith(("CET", "CEST")) for line in runs)

    code, out, err = await run_jetscan(
        env, "schedule", "preview", "30 2 * * *", "--tz", "Europe/Berlin", "--count", "3"
    )
    assert code == 0, err
    assert len(out.splitlines()) == 3 and all("02:30 CE" in line for line in out.splitlines())

    code, out, err = await run_jetscan(env, "schedule", "pause", first, "--note", "change window")
    assert code == 0 and "yes: change window" in out, (out, err)
    code, out, err = await run_jetscan(env, "schedule", "run-now", first, "--json")
    assert code == 0, err
    scan = json.loads(out)
    assert scan["trigger"] == "manual" and scan["scheduleId"] == first

    async def recorded() -> bool:
        code, out, _ = await run_jetscan(env, "schedule", "runs", first, "--json")
        rows = [json.loads(line) for line in out.splitlines()]
        return code == 0 and [(r["trigger"], r["outcome"], r["scanId"]) for r in rows] == [
            ("manual", "started", scan["id"])
        ]

    await eventually(recorded, within=30)
    code, out, _ = await run_jetscan(env, "schedule", "resume", first)
    assert code == 0 and first in out
    for m in made:
        code, out, err = await run_jetscan(env, "schedule", "delete", m["id"])
        assert code == 0, err


async def test_schedule_errors(stack: Stack) -> None:
    env = env_for(stack)
    code, _, err = await run_jetscan(
        env, "schedule", "create", "127.0.0.1", "--tool", "nmap", "--cron", "0 0 30 2 *"
    )
    assert code == 1
    assert one_line(err).startswith("jetscan: INVALID_ARGUMENT: schedule.cron: ")
    code, _, err = await run_jetscan(
        env, "schedule", "create", "10.0.0.1", "--tool", "nmap", "--cron", "@daily"
    )
    assert code == 1 and "PERMISSION_DENIED" in one_line(err)
    code, _, err = await run_jetscan(
        env, "schedule", "create", "--tool", "nmap", "--cron", "@daily"
    )
    assert code == 2 and "at least one TARGET" in one_line(err)
    code, _, err = await run_jetscan(env, "schedule", "preview", "@reboot")
    assert code == 1 and "cron: " in one_line(err)
    code, _, err = await run_jetscan(env, "schedule", "get", "no-such-schedule")
    assert code == 1 and "NOT_FOUND" in one_line(err)
    code, _, _ = await run_jetscan(
        env, "schedule", "create", "x", "--tool", "nmap", "--cron", "@daily", "--jitter", "soon"
    )
    assert code == 2
