-- Issue 14. How an app is built, as Heroku's stacks say it: 'buildpacks' (the buildpack that
-- detects it, its root Dockerfile only when none does) or 'container' (its Dockerfile).
ALTER TABLE apps ADD COLUMN stack TEXT NOT NULL DEFAULT 'buildpacks';
