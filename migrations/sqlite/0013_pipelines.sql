-- Issue 15. Pipelines: apps in stages (development, staging, production) that a build is
-- promoted through without a rebuild. An app is in at most one pipeline (Heroku's rule).
CREATE TABLE pipelines (
    id         BLOB PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    owner_id   BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL
);

CREATE TABLE pipeline_apps (
    pipeline_id BLOB NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    app_id      BLOB NOT NULL UNIQUE REFERENCES apps (id) ON DELETE CASCADE,
    stage       TEXT NOT NULL CHECK (stage IN ('development', 'staging', 'production')),
    added_at    TEXT NOT NULL
);
CREATE INDEX pipeline_apps_pipeline ON pipeline_apps (pipeline_id);

-- A stage's gates: a protected stage takes promotions only with another person's approval;
-- an auto-promoting stage promotes each successful deploy onward by itself.
CREATE TABLE pipeline_stages (
    pipeline_id  BLOB NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    stage        TEXT NOT NULL CHECK (stage IN ('development', 'staging', 'production')),
    protected    BOOLEAN NOT NULL,
    auto_promote BOOLEAN NOT NULL,
    PRIMARY KEY (pipeline_id, stage)
);
