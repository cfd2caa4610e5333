-- The portal's findings list (issue 16): most severe first across every finding, by the
-- severity that counts (overridden, else reported), with keyset paging on (severity, key): newest first within a severity.
-- Without it an unfiltered page sorted every finding (160 ms at 100,000; bench/ui.py);
-- with it a page reads its 101 rows in index order, and an exact severity is a range of it.
-- Ascending, read backwards: ingest pays one index entry per new finding, at the right
-- edge of its severity's range (`key` grows; keyed on the random text id it cost a sixth of
-- bench ingest's rate, and descending a few percent more); a rescan's update leaves both
-- columns as they were, so it stays a HOT update.
CREATE INDEX findings_severity ON findings ((coalesce(severity_override, severity)), key);
-- The same order over triaged findings only (few, and no entry for an untriaged one, so
-- ingest pays nothing): a triage filter reads it instead of walking every finding.
CREATE INDEX findings_triaged ON findings ((coalesce(severity_override, severity)) DESC, key DESC)
    WHERE triage <> 'none';
