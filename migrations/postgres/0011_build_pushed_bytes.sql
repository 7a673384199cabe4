-- Issue 14. The bytes a build's image push sent the registry: with the run image's layers
-- and unchanged layers already there, what the build's changes cost. NULL for builds before
-- this, for failed ones and without a registry.
ALTER TABLE builds ADD COLUMN pushed_bytes BIGINT;
