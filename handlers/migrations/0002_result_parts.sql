-- The highest part of a scan's result stored so far: a result arriving in many parts is
-- waited for before its scan is shown as succeeded (see store.apply_event).
ALTER TABLE scans ADD COLUMN result_part integer NOT NULL DEFAULT 0;
