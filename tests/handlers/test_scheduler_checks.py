"""The scheduler's scope re-check: StartScan's own validation, kept per (id, updated_at)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.schedules import ScheduleSpec, ScheduleView
from contracts.settings import Address, Settings
from handlers.scheduler import Scheduler
from handlers.scheduler.firing import Outcome

T0 = datetime(2027, 5, 1, tzinfo=UTC)


def view(target: str, updated_at: datetime, **spec: object) -> ScheduleView:
    fields: dict[str, object] = {
        "target": target,
        "domain": target,
        "tool": "nmap",
        "config": {"ports": "22"},
        "deadline_seconds": 600,
        "cron": "@daily",
        **spec,
    }
    return ScheduleView(
        id="s1",
        spec=ScheduleSpec(**fields),  # type: ignore[arg-type]
        created_at=T0,
        updated_at=updated_at,
    )


def scheduler(scope: str) -> Scheduler:
    settings = Settings(
        home=Path("/nonexistent"),
        grpc_addr=Address("127.0.0.1", 1),
        http_addr=Address("127.0.0.1", 2),
        scope=scope,
    )
    # The checks touch neither PostgreSQL nor NATS.
    return Scheduler(None, None, settings)  # type: ignore[arg-type]


def test_out_of_scope_and_invalid_are_refused_with_their_outcome() -> None:
    s = scheduler("127.0.0.1/32")
    assert s.check(view("127.0.0.1", T0)) is None
    outcome, reason = s.check(view("127.0.0.2", T0 + timedelta(1))) or (None, "")
    assert outcome is Outcome.REFUSED_SCOPE and "outside the allowed scope" in reason
    bad = view("127.0.0.1", T0 + timedelta(2), config={"bogus": 1})
    outcome, reason = s.check(bad) or (None, "")
    assert outcome is Outcome.FAILED and "bogus" in reason


def test_an_edit_is_checked_anew() -> None:
    s = scheduler("127.0.0.1/32")
    assert s.check(view("127.0.0.1", T0)) is None
    # Same id, later updated_at: the edited settings are what is checked.
    edited = view("127.0.0.9", T0 + timedelta(seconds=1))
    assert s.check(edited) is not None
    # Another process with another scope answers for its own scope.
    assert scheduler("127.0.0.0/8").check(edited) is None
