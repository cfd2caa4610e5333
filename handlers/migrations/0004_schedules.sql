-- Scheduled scans. The scheduler keeps these; ingest only projects the scans they start.
ALTER TABLE scans ADD COLUMN trigger text NOT NULL DEFAULT 'api';
CREATE INDEX scans_schedule ON scans (schedule_id, created_at DESC, id DESC)
    WHERE schedule_id <> '';

CREATE TABLE schedules (
    id                     text PRIMARY KEY,
    target                 text        NOT NULL,
    domain                 text        NOT NULL,
    tool                   text        NOT NULL,
    config                 jsonb       NOT NULL DEFAULT '{}',
    deadline_seconds       integer     NOT NULL,
    cron                   text        NOT NULL,
    timezone               text        NOT NULL DEFAULT '',
    overlap                text        NOT NULL DEFAULT 'skip',
    catchup_window_seconds integer     NOT NULL,
    jitter_seconds         integer     NOT NULL DEFAULT 0,
    paused                 boolean     NOT NULL DEFAULT false,
    pause_note             text        NOT NULL DEFAULT '',
    request_id             text        NOT NULL DEFAULT '',
    created_by             text        NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    -- The nominal fire time the schedule waits for, and when it is due (nominal + jitter).
    -- Claiming a fire moves both forward, conditionally on the old value: one replica wins.
    next_fire_at           timestamptz NOT NULL,
    due_at                 timestamptz NOT NULL,
    last_run_at            timestamptz,
    last_scan_id           text        NOT NULL DEFAULT '',
    last_outcome           text        NOT NULL DEFAULT ''
);
CREATE INDEX schedules_due ON schedules (due_at);
CREATE INDEX schedules_newest ON schedules (created_at DESC, id DESC);

-- One row per (schedule, nominal time): the identity of a run. A started run is written
-- `claimed` in the same transaction that moves the schedule on, and `published` once its
-- StartScan is in COMMANDS; a claim left unpublished (a replica died) is published by any
-- replica, under the same Nats-Msg-Id.
CREATE TABLE schedule_runs (
    schedule_id   text        NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    nominal_time  timestamptz NOT NULL,
    trigger       text        NOT NULL,
    outcome       text        NOT NULL,
    scan_id       text        NOT NULL DEFAULT '',
    reason        text        NOT NULL DEFAULT '',
    state         text        NOT NULL DEFAULT 'done',
    -- A scan to cancel before starting this run (overlap `replace`).
    cancel_scan_id text       NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (schedule_id, nominal_time)
);
CREATE INDEX schedule_runs_claimed ON schedule_runs (recorded_at) WHERE state = 'claimed';
