-- The store is where the platform's processes meet (issue 10): the API and the gateway write
-- what should be, release managers converge to it.
--
-- `work` is the durable queue. Each row is one thing a release manager must do for an app —
-- deploy a release, settle a push, scale, restart, update hosts, destroy, run a one-off
-- command — claimed with a lease (`holder`, `lease_until` in milliseconds since the epoch) and
-- taken over by another release manager when the lease lapses. An app's rows are done in
-- order, one at a time. Rows name apps by name: a destroy outlives the app's row.
-- `work_output` holds the lines a piece of work prints (deploy progress, a one-off's output),
-- bounded per row, for whoever waits on it in another process.
-- `leases` are named, expiring locks: a push per app, the local runtime's one active holder.
-- `processes` is what the active runtime last said an app runs, for `slip ps`.
-- `apps.generation` counts restarts: a runtime that has seen a smaller one restarts the app.
CREATE TABLE work (
    id          BIGSERIAL PRIMARY KEY,
    app         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    version     BIGINT,
    argument    TEXT,
    status      TEXT NOT NULL,
    holder      TEXT,
    lease_until BIGINT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT,
    exit_status INTEGER,
    created_at  TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX work_unfinished ON work (status, id);
CREATE INDEX work_app ON work (app, id);

CREATE TABLE work_output (
    work_id BIGINT NOT NULL REFERENCES work (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (work_id, seq)
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE processes (
    app          TEXT NOT NULL,
    name         TEXT NOT NULL,
    process_type TEXT NOT NULL,
    command      TEXT NOT NULL,
    release      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    since        TIMESTAMPTZ NOT NULL,
    restarts     INTEGER NOT NULL
);
-- Not unique by name: during a deploy the old web.1 stops beside the new one.
CREATE INDEX processes_app ON processes (app);

ALTER TABLE apps ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

-- Each app's number among all apps ever made, from which the sandbox derives the uid its code
-- runs as: the same in every process (a gateway's builds, a releaser's processes), and never
-- two live apps' at once. Apps made before are numbered by age.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
ALTER TABLE apps ADD COLUMN uid_slot BIGINT;
UPDATE apps SET uid_slot = (SELECT COUNT(*) FROM apps a2
    WHERE a2.created_at < apps.created_at OR (a2.created_at = apps.created_at AND a2.name < apps.name));
INSERT INTO counters (name, value) SELECT 'app_uid', COUNT(*) FROM apps;
