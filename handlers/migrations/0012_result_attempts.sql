-- A scan whose job jetscan lost runs again (issue 17); its result comes again, maybe in
-- another number of parts. Parts are kept per attempt, and the scan's result is the latest
-- attempt's: `result_attempt` names it, and only its parts count towards a complete result.
-- A part of an older attempt that arrives late is ignored.
ALTER TABLE scans ADD COLUMN result_attempt integer NOT NULL DEFAULT 1;
ALTER TABLE scan_result_parts ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE scan_result_parts DROP CONSTRAINT scan_result_parts_pkey;
ALTER TABLE scan_result_parts ADD PRIMARY KEY (scan_id, attempt, part);
