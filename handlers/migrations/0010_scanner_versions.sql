-- The scanner's version as its result names it (ScanResult.scanner_version), for reports'
-- scope and method. '' for a scan whose result did not say (older results: the report then
-- looks for it in the stored console, as before).
ALTER TABLE scans ADD COLUMN scanner_version text NOT NULL DEFAULT '';
