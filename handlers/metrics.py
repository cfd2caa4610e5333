"""Every Prometheus metric of the handler roles, defined once (the edge's are in
`edge/metrics.py`). Served at `/metrics` by `workers/health.py`.

Conventions: counters end in `_total`, durations are `_seconds` histograms, sizes are plain
numbers; labels take a few fixed values each (a tool, a status, a consumer name), never a scan
id, so the number of series stays fixed however many scans run. Handler paths call `.labels(...)`
(a dict lookup); the edge's hot path binds its label sets once (`edge/metrics.py`).

The scheduler's and the reports role's:
- `jetscan_schedule_fires_total{outcome}` (a fire time's recorded outcome: `started`,
  `skipped_overlap`, `skipped_paused`, `missed`, `refused_scope`, `failed`),
  `jetscan_schedule_missed_fires_total{outcome}` (`caught_up`: run more than a minute late;
  `skipped`: past the catch-up window, recorded missed), `jetscan_schedule_lag_seconds` (how
  late a fire was published after its nominal time);
- `jetscan_report_render_seconds{format}` (`pdf`, `sarif`, `defectdojo`, `csv`, `json`).
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

# Seconds, from a fast JetStream round trip to a long ZAP scan.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_JOB = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)

COMMANDS = Counter(
    "jetscan_commands_total",
    "Scan commands the launcher handled, by type (start, cancel) and outcome.",
    ["type", "outcome"],
)
LAUNCHES = Counter(
    "jetscan_launches_total",
    "Jobs the launcher asked its executor for, by tool and outcome"
    " (started, refused, unavailable).",
    ["tool", "outcome"],
)
QUEUE_WAIT = Histogram(
    "jetscan_queue_wait_seconds",
    "From a scan's request to its job's start.",
    buckets=_LATENCY,
)
QUEUE_DEPTH = Gauge(
    "jetscan_queue_depth",
    "Scan commands waiting for the launcher (its consumer's pending messages).",
)
RUNNING_JOBS = Gauge("jetscan_running_jobs", "Scan jobs this launcher started that have not ended.")
JOB_DURATION = Histogram(
    "jetscan_job_duration_seconds",
    "From a job's start to its end, by tool and outcome (the scan's terminal status).",
    ["tool", "outcome"],
    buckets=_JOB,
)
EVENTS = Counter(
    "jetscan_events_total",
    "Scan lifecycle events ingest handled, by status and outcome (applied, ignored).",
    ["status", "outcome"],
)
MESSAGES = Counter(
    "jetscan_messages_total",
    "JetStream messages handlers settled, by durable consumer and outcome"
    " (acked, retried, parked).",
    ["consumer", "outcome"],
)
REDELIVERIES = Counter(
    "jetscan_redeliveries_total",
    "Messages a handler received again after a failed attempt, by durable consumer.",
    ["consumer"],
)
CONSUMER_PENDING = Gauge(
    "jetscan_consumer_pending_messages",
    "Messages a durable consumer has not delivered yet (its lag), read from JetStream.",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "jetscan_consumer_ack_pending_messages",
    "Messages delivered and not acknowledged yet, by durable consumer.",
    ["consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "jetscan_consumer_redelivered_messages",
    "Messages out for redelivery now, by durable consumer.",
    ["consumer"],
)
PARKED = Gauge(
    "jetscan_parked_messages",
    "Advisories in the PARKED stream: messages given up on after max_deliver or terminated.",
)
SCHEDULE_FIRES = Counter(
    "jetscan_schedule_fires_total",
    "Schedule fire times by recorded outcome (started, skipped_overlap, skipped_paused,"
    " missed, refused_scope, failed).",
    ["outcome"],
)
SCHEDULE_MISSED = Counter(
    "jetscan_schedule_missed_fires_total",
    "Fires whose time passed while no scheduler ran, by outcome (caught_up, skipped).",
    ["outcome"],
)
SCHEDULE_LAG = Histogram(
    "jetscan_schedule_lag_seconds",
    "How late a schedule's fire was published after its due time.",
    buckets=_LATENCY,
)
REPORT_RENDER = Histogram(
    "jetscan_report_render_seconds", "Time to render one report, by format.", ["format"]
)


# asyncpg pools take no weak references: a closed pool is dropped at the next scrape.
_pools: list[asyncpg.Pool] = []


class _PoolCollector(Collector):
    """Connections of every asyncpg pool of this process, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = idle = limit = 0
        _pools[:] = [p for p in _pools if not p.is_closing()]
        for pool in _pools:
            size += pool.get_size()
            idle += pool.get_idle_size()
            limit += pool.get_max_size()
        used = GaugeMetricFamily(
            "jetscan_db_pool_connections", "PostgreSQL pool connections by state.", labels=["state"]
        )
        used.add_metric(["busy"], size - idle)
        used.add_metric(["idle"], idle)
        yield used
        yield GaugeMetricFamily(
            "jetscan_db_pool_max_connections", "PostgreSQL pool size limit.", value=limit
        )


REGISTRY.register(_PoolCollector())


def watch_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    """Count `pool` in `jetscan_db_pool_*` while it lives."""
    _pools.append(pool)
    return pool
