-- Scans, findings and console lines: projections of the bus, keyed so that a redelivered
-- or replayed message changes nothing.
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
    data_artifact    text        NOT NULL DEFAULT '',
    partial          boolean     NOT NULL DEFAULT false,
    result_at        timestamptz,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scans_newest ON scans (created_at DESC, id DESC);
CREATE INDEX scans_domain ON scans (domain, created_at DESC, id DESC);
CREATE INDEX scans_tool ON scans (tool, created_at DESC, id DESC);
CREATE INDEX scans_status ON scans (status, created_at DESC, id DESC);
CREATE INDEX scans_active ON scans (updated_at) WHERE status IN ('launching', 'running');

-- One row per distinct finding of a tool (its fingerprint is location-based), so a rescan
-- that sees the same thing moves last_seen instead of adding a row.
CREATE TABLE findings (
    id           text PRIMARY KEY,
    tool         text        NOT NULL,
    fingerprint  text        NOT NULL,
    severity     smallint    NOT NULL,
    body         jsonb       NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    last_scan_id text        NOT NULL,
    UNIQUE (tool, fingerprint)
);

-- Which scans saw which findings.
CREATE TABLE scan_findings (
    scan_id    text     NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    finding_id text     NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    severity   smallint NOT NULL,
    PRIMARY KEY (scan_id, finding_id)
);
CREATE INDEX scan_findings_page ON scan_findings (scan_id, severity DESC, finding_id);

CREATE TABLE scan_output (
    scan_id text        NOT NULL,
    seq     bigint      NOT NULL,
    time    timestamptz NOT NULL,
    stream  text        NOT NULL,
    text    text        NOT NULL,
    PRIMARY KEY (scan_id, seq)
);
