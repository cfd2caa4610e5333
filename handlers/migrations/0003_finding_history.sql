-- Findings over time (issue 14): a finding is one fingerprint of one tool on one target, with
-- a state (open/fixed) that each scan covering it may change, and a triage that survives
-- rescans. See docs/architecture.md, "Findings over time".

-- What a scan looked at (contracts.coverage.Coverage as JSON; NULL: nothing can be fixed by
-- it), when it observed (the result's finished_at: the order in which scans decide), and
-- whether the fixes it implies have been applied.
ALTER TABLE scans ADD COLUMN coverage jsonb;
ALTER TABLE scans ADD COLUMN observed_at timestamptz;
ALTER TABLE scans ADD COLUMN fixes_applied boolean NOT NULL DEFAULT false;

ALTER TABLE findings ADD COLUMN target text;
ALTER TABLE findings ADD COLUMN domain text NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN state text NOT NULL DEFAULT 'open'
    CHECK (state IN ('open', 'fixed'));
-- The observation time of the scan that last decided the state: a result older than this
-- (replayed, or late) never reopens or fixes the finding.
ALTER TABLE findings ADD COLUMN decided_at timestamptz;
ALTER TABLE findings ADD COLUMN fixed_at timestamptz;
ALTER TABLE findings ADD COLUMN reopened integer NOT NULL DEFAULT 0;
ALTER TABLE findings ADD COLUMN triage text NOT NULL DEFAULT 'none'
    CHECK (triage IN ('none', 'false_positive', 'accepted_risk'));
ALTER TABLE findings ADD COLUMN triage_reason text NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN triage_until timestamptz;
ALTER TABLE findings ADD COLUMN triaged_by text NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN triaged_at timestamptz;
ALTER TABLE findings ADD COLUMN severity_override smallint;

-- What each scan decided about each finding: seen (new/unchanged/reopened) or, for a finding
-- it covered and did not see, fixed. Rows with change <> 'fixed' are the occurrences.
ALTER TABLE scan_findings ADD COLUMN change text NOT NULL DEFAULT 'unchanged'
    CHECK (change IN ('new', 'unchanged', 'reopened', 'fixed'));

-- The id is a digest of (tool, target, fingerprint), so the primary key is the identity: no
-- second unique index to maintain on every write.
ALTER TABLE findings DROP CONSTRAINT findings_tool_fingerprint_key;

-- Existing findings were one row per (tool, fingerprint) across targets: split them per
-- target of the scans that saw them, with the id of the new identity
-- (handlers.store.finding_id: sha256 of tool, target, fingerprint).
CREATE TEMP TABLE split ON COMMIT DROP AS
SELECT f.id AS old_id,
       left(encode(sha256(convert_to(f.tool || chr(31) || s.target || chr(31) || f.fingerprint,
                                     'UTF8')), 'hex'), 32) AS new_id,
       f.tool, s.target, s.domain, f.fingerprint,
       min(coalesce(s.finished_at, s.created_at)) AS first_seen,
       max(coalesce(s.finished_at, s.created_at)) AS last_seen,
       (array_agg(s.id ORDER BY coalesce(s.finished_at, s.created_at) DESC))[1] AS last_scan_id
FROM findings f
JOIN scan_findings sf ON sf.finding_id = f.id
JOIN scans s ON s.id = sf.scan_id
GROUP BY f.id, f.tool, s.target, s.domain, f.fingerprint;

INSERT INTO findings (id, tool, fingerprint, severity, body, first_seen, last_seen, last_scan_id,
                      target, domain, decided_at)
SELECT sp.new_id, sp.tool, sp.fingerprint, f.severity, f.body, sp.first_seen, sp.last_seen,
       sp.last_scan_id, sp.target, sp.domain, sp.last_seen
FROM split sp JOIN findings f ON f.id = sp.old_id;

UPDATE scan_findings sf SET finding_id = sp.new_id
FROM split sp, scans s
WHERE sf.finding_id = sp.old_id AND s.id = sf.scan_id AND s.target = sp.target;

DELETE FROM findings WHERE target IS NULL;

-- A finding's first scan saw it as new.
UPDATE scan_findings sf SET change = 'new'
FROM findings f
WHERE f.id = sf.finding_id AND f.first_seen = (
    SELECT coalesce(s.finished_at, s.created_at) FROM scans s WHERE s.id = sf.scan_id);

ALTER TABLE findings ALTER COLUMN target SET NOT NULL;
ALTER TABLE findings ALTER COLUMN decided_at SET NOT NULL;

-- Ingest writes every finding of every scan (bench/ingest.py: 100,000 per result), so each
-- index and constraint here is paid per row per scan. Kept: the key, the (target, tool) the
-- fixes and most lists select by (a domain filter goes through scans' domain index to its
-- targets), and expiring accepted risks. Left out: foreign keys of scan_findings (a lookup
-- per row; ingest writes both sides under one lock, and nothing deletes scans), an index by
-- finding (a finding's scans are found through its target's scans and the primary key), and
-- a severity-ordered index over all findings (an unfiltered list sorts).
CREATE INDEX findings_target ON findings (target, tool, state);
CREATE INDEX findings_expiring ON findings (triage_until) WHERE triage = 'accepted_risk';
DROP INDEX scan_findings_page;
ALTER TABLE scan_findings DROP CONSTRAINT scan_findings_scan_id_fkey;
ALTER TABLE scan_findings DROP CONSTRAINT scan_findings_finding_id_fkey;
-- A rescan updates every finding it saw; half of each page free keeps those updates on the
-- page (HOT: no index entry written): 99 % of a 100,000-finding rescan, against 43 % at 70.
ALTER TABLE findings SET (fillfactor = 50);
-- BLAKE2b-128 of the body as last stored: a rescan rewrites the body only when it changed.
ALTER TABLE findings ADD COLUMN digest text NOT NULL DEFAULT '';
-- The state and decided_at a finding had before the last sighting applied to it: ingest's
-- UPDATE sets them from the old row and RETURNs them, to name the sighting's change
-- without reading the row twice.
ALTER TABLE findings ADD COLUMN prev_state text NOT NULL DEFAULT 'open';
ALTER TABLE findings ADD COLUMN prev_decided_at timestamptz;

-- Every triage decision, kept: who, when, what and why. `command_id` makes applying a
-- redelivered triage command a no-op.
CREATE TABLE finding_triage (
    seq               bigserial PRIMARY KEY,
    command_id        text        NOT NULL UNIQUE,
    finding_id        text        NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    triage            text        NOT NULL,
    reason            text        NOT NULL DEFAULT '',
    until             timestamptz,
    severity_override smallint,
    triaged_by        text        NOT NULL,
    triaged_at        timestamptz NOT NULL
);
CREATE INDEX finding_triage_history ON finding_triage (finding_id, seq);

-- A finding's scans: those of its target and tool.
CREATE INDEX scans_target ON scans (target, tool);

-- Which parts of a scan's result are stored (a redelivered part is recognised and skipped),
-- and how many it has: fixes wait for all of them.
CREATE TABLE scan_result_parts (
    scan_id text    NOT NULL,
    part    integer NOT NULL,
    PRIMARY KEY (scan_id, part)
);
ALTER TABLE scans ADD COLUMN result_parts integer NOT NULL DEFAULT 0;

-- Why the scan's own result says it is incomplete (shown after a failed scan's reason).
ALTER TABLE scans ADD COLUMN result_error text NOT NULL DEFAULT '';
