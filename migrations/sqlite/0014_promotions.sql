-- Issue 15. Promotion: a downstream app's release of an upstream app's build, without a
-- rebuild. The downstream app gets a build row of its own that names where it came from; its
-- commit is the upstream's, which the downstream repository never saw, so such a build is
-- never settled as a push's.
ALTER TABLE builds ADD COLUMN promoted_from TEXT;

-- Every promotion asked for: done at once, or pending another person's approval when its
-- target's stage is protected. The build it promotes is pinned when asked for (image,
-- Procfile, commit copied), so an approval deploys what was asked for even if the upstream
-- has moved on. Numbers are small, for typing `slip promotions:approve 3`.
CREATE TABLE promotions (
    id             BLOB PRIMARY KEY NOT NULL,
    number         INTEGER NOT NULL UNIQUE,
    pipeline_id    BLOB NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    source_app     TEXT NOT NULL,
    source_version INTEGER NOT NULL,
    image          TEXT NOT NULL,
    procfile       TEXT NOT NULL,
    commit_sha     TEXT,
    target_app_id  BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    status         TEXT NOT NULL
                   CHECK (status IN ('pending', 'done', 'rejected', 'superseded')),
    requested_by   BLOB NOT NULL REFERENCES users (id),
    requested_at   TEXT NOT NULL,
    decided_by     BLOB REFERENCES users (id),
    decided_at     TEXT,
    release_version INTEGER
);
CREATE INDEX promotions_target ON promotions (target_app_id, status);
CREATE INDEX promotions_pipeline ON promotions (pipeline_id, number);
INSERT INTO counters (name, value) VALUES ('promotion', 0);

-- The pipeline an event's app was in when it happened, so `slip events --pipeline P` shows a
-- pipeline's history as it was.
ALTER TABLE events ADD COLUMN pipeline TEXT;
CREATE INDEX events_pipeline ON events (pipeline, id);
