-- Scans, their findings and console lines: projections of the bus, keyed so that a
-- redelivered or replayed message changes nothing.
CREATE TABLE scans (
    id               text PRIMARY KEY,
    target           text        NOT NULL,
    domain           text        NOT NULL,
    tool             text        NOT NULL,
    config           jsonb       NOT NULL DEFAULT '{}',
    status           text        NOT NULL,
    exit_code        integer,
    error            text        NOT NULL DEFAULT '',
    deadline_seconds integer     NOT NULL,
    requested_by     text        NOT NULL DEFAULT '',
    request_id       text        NOT NULL DEFAULT '',
    schedule_id      text        NOT NULL DEFAULT '',
    artifact         text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scans_newest ON scans (created_at DESC, id DESC);
CREATE INDEX scans_domain ON scans (domain, created_at DESC, id DESC);
CREATE INDEX scans_tool ON scans (tool, created_at DESC, id DESC);
CREATE INDEX scans_status ON scans (status, created_at DESC, id DESC);

CREATE TABLE findings (
    id          text PRIMARY KEY,
    scan_id     text        NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    tool        text        NOT NULL,
    fingerprint text        NOT NULL,
    severity    smallint    NOT NULL,
    body        jsonb       NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    UNIQUE (scan_id, fingerprint)
);
CREATE INDEX findings_by_scan ON findings (scan_id, severity DESC, id);
CREATE INDEX findings_by_fingerprint ON findings (tool, fingerprint);

CREATE TABLE scan_output (
    scan_id text        NOT NULL,
    seq     bigint      NOT NULL,
    time    timestamptz NOT NULL,
    stream  text        NOT NULL,
    text    text        NOT NULL,
    PRIMARY KEY (scan_id, seq)
);
