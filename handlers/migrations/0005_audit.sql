-- The audit log's durable copy: one row per mutation (its id is the record's), kept past
-- the EVENTS stream's 30 days. Read by time (`jetscan audit --since`) and by who did it.
CREATE TABLE audit (
    id      text        PRIMARY KEY,
    at      timestamptz NOT NULL,
    source  text        NOT NULL,
    action  text        NOT NULL,
    who     text        NOT NULL,
    role    text        NOT NULL,
    origin  text        NOT NULL DEFAULT '',
    target  text        NOT NULL DEFAULT '',
    token   text        NOT NULL DEFAULT '',
    outcome text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_who_at ON audit (who, at, id);
