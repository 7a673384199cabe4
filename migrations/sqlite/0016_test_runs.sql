-- Issue 15. Test runs: a build tested with the command app.json or the Procfile's test: type
-- names, and the environment app.json gives it (never the app's config). A run keeps its own
-- copy of the image and process types, so it is tested as built even while the build is
-- still running (a push's tests run before its build counts as succeeded). Output is kept
-- up to 4 MiB. last_test_run numbers an app's runs as last_version numbers its releases.
-- builds.test_plan is how to test a build (JSON: command and app.json's env), NULL when
-- nothing says, so a build can be tested again later.
ALTER TABLE builds ADD COLUMN test_plan TEXT;
ALTER TABLE apps ADD COLUMN last_test_run INTEGER NOT NULL DEFAULT 0;

CREATE TABLE test_runs (
    id          BLOB PRIMARY KEY NOT NULL,
    app_id      BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    build_id    BLOB NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    commit_sha  TEXT,
    image       TEXT NOT NULL,
    procfile    TEXT NOT NULL,
    command     TEXT NOT NULL,
    env         TEXT NOT NULL,
    cause       TEXT NOT NULL CHECK (cause IN ('push', 'ci-run', 'api')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'errored')),
    exit_status INTEGER,
    output      TEXT NOT NULL DEFAULT '',
    created_by  BLOB NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (app_id, number)
);
