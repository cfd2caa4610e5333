-- Reports (issue 15): one row per GenerateReport, written by the reports role, which alone
-- knows when a report is picked up, rendered or failed. The files and the snapshot live in
-- the `artifacts` object store under reports/<id>/.
CREATE TABLE reports (
    id              text PRIMARY KEY,
    format          text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    scan_ids        text[]      NOT NULL DEFAULT '{}',
    domain          text        NOT NULL DEFAULT '',
    target          text        NOT NULL DEFAULT '',
    schedule_id     text        NOT NULL DEFAULT '',
    command         jsonb       NOT NULL,
    file            text        NOT NULL DEFAULT '',
    size_bytes      bigint      NOT NULL DEFAULT 0,
    sha256          text        NOT NULL DEFAULT '',
    snapshot_sha256 text        NOT NULL DEFAULT '',
    error           text        NOT NULL DEFAULT '',
    requested_by    text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    ready_at        timestamptz
);
CREATE INDEX reports_newest ON reports (created_at DESC, id DESC);
CREATE INDEX reports_domain ON reports (domain, created_at DESC, id DESC);
CREATE INDEX reports_scans ON reports USING gin (scan_ids);
