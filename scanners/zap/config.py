"""The ZAP options a scan request may set: phase time limits and a named scan policy.

Every phase ZAP runs has a limit in whole minutes, because ZAP's own limits are minutes and
0 means "unlimited" to it, which a scan must never get. The phases together, plus what ZAP
needs to start and write its report (`OVERHEAD_SECONDS`), must fit the longest deadline a
ZAP scan may have; fitting them into a particular scan's deadline is the plan's job.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from scanners.errors import ConfigError

MAX_DEADLINE_SECONDS = 86400
# ZAP's start-up (add-ons, a new session), the report and shutdown: on a small pod start-up
# alone takes 30-60 s.
OVERHEAD_SECONDS = 120
MAX_PHASE_MINUTES = (MAX_DEADLINE_SECONDS - OVERHEAD_SECONDS) // 60

# The policies the ZAP image ships in ZAP's home (zaproxy's docker/policies): "St" is the
# attack strength, "Th" the alert threshold. The Insane strengths stay out until someone
# decides on purpose to send that many requests to a target.
ScanPolicy = Literal[
    "Default Policy",
    "API-Minimal",
    "St-Low-Th-Low",
    "St-Low-Th-Med",
    "St-Low-Th-High",
    "St-Med-Th-Low",
    "St-Med-Th-High",
    "St-High-Th-Low",
    "St-High-Th-Med",
    "St-High-Th-High",
]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=MAX_PHASE_MINUTES)]


class ZapConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options for one ZAP scan. Construct it through `scanners.decode_config`.

    The traditional spider and the passive-scan wait always run; the AJAX spider (which
    drives a headless Firefox) and the active scan (which attacks the target) run only when
    given minutes. `active_scan_policy` defaults to ZAP's "Default Policy".
    """

    spider_minutes: Minutes = 5
    ajax_spider_minutes: Minutes | None = None
    passive_wait_minutes: Minutes = 5
    active_scan_minutes: Minutes | None = None
    active_scan_policy: ScanPolicy | None = None

    def __post_init__(self) -> None:
        if self.active_scan_policy is not None and self.active_scan_minutes is None:
            raise ConfigError(
                "active_scan_policy", "applies only with active_scan_minutes (no active scan runs)"
            )
        limit = MAX_PHASE_MINUTES
        total = 0
        for field, minutes in self.phases():
            total += minutes
            if total > limit:
                raise ConfigError(
                    field,
                    f"the phases add up to more than {limit} minutes, which with ZAP's start-up"
                    f" and report would not fit the longest deadline ({MAX_DEADLINE_SECONDS} s)",
                )

    def phases(self) -> list[tuple[str, int]]:
        """(option, minutes) of each phase that runs, in the order ZAP runs them."""
        optional = (
            ("ajax_spider_minutes", self.ajax_spider_minutes),
            ("passive_wait_minutes", self.passive_wait_minutes),
            ("active_scan_minutes", self.active_scan_minutes),
        )
        return [("spider_minutes", self.spider_minutes)] + [
            (field, minutes) for field, minutes in optional if minutes is not None
        ]
