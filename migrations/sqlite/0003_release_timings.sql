-- When the release manager started deploying a release and when it finished (succeeded or
-- failed); NULL until then.
ALTER TABLE releases ADD COLUMN deploy_started_at TEXT;
ALTER TABLE releases ADD COLUMN deploy_finished_at TEXT;
