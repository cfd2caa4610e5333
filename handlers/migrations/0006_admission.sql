-- Admission and retries (issue 17): how many times a scan's job was launched, and the
-- waiting scans in the order the launcher admits them (round-robin by requester, oldest
-- first), which `query.scan.get` counts for `queue_position`.
ALTER TABLE scans ADD COLUMN attempts integer NOT NULL DEFAULT 0;
UPDATE scans SET attempts = 1 WHERE status IN ('launching', 'running') OR started_at IS NOT NULL;
CREATE INDEX scans_queued ON scans (requested_by, created_at, id) WHERE status = 'queued';
