-- Retries (issue 17): how many times a scan's job was launched. 0 while it waits; a retry
-- after jetscan lost the job adds one. Scans launched before this count one.
ALTER TABLE scans ADD COLUMN attempts integer NOT NULL DEFAULT 0;
UPDATE scans SET attempts = 1 WHERE status IN ('launching', 'running') OR started_at IS NOT NULL;
