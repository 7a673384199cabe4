-- Each app's per-process-type settings (issue 11): health checks, resource limits and
-- autoscaling, as the JSON of `domain::ProcessSettings` (`{"web": {"limits": {...}}}`). Like
-- the formation they belong to the app, not to a release, so a rollback keeps them.
ALTER TABLE apps ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
