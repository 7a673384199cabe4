-- Slipway's schema on PostgreSQL. migrations/sqlite/0001_initial.sql is the same schema on
-- SQLite; keep the two in step, one file per change with the same number.
-- Ids are UUIDv7, times are TIMESTAMPTZ written by the application.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin         BOOLEAN NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- API tokens are stored as SHA-256 hashes; logout deletes the row.
CREATE TABLE api_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE ssh_keys (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL UNIQUE,
    public_key  TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX ssh_keys_user ON ssh_keys (user_id);

-- last_version is the release counter: a new release takes last_version + 1 in the same
-- transaction that inserts it, so versions are unique and gap-free under concurrency.
CREATE TABLE apps (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    owner_id     UUID NOT NULL REFERENCES users (id),
    last_version BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE collaborators (
    app_id   UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE INDEX collaborators_user ON collaborators (user_id);

-- A build comes from a pushed commit or, for a prebuilt image, from that image alone.
-- procfile is a JSON object of process type -> command.
CREATE TABLE builds (
    id          UUID PRIMARY KEY,
    app_id      UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    commit_sha  TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    procfile    TEXT NOT NULL,
    image       TEXT,
    created_by  UUID NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
CREATE INDEX builds_app ON builds (app_id, created_at);

-- config is the release's whole config snapshot, a JSON object of key -> value.
CREATE TABLE releases (
    id         UUID PRIMARY KEY,
    app_id     UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL CHECK (version >= 1),
    build_id   UUID REFERENCES builds (id),
    config     TEXT NOT NULL,
    summary    TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'deploying', 'succeeded', 'failed')),
    reason     TEXT,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (app_id, version)
);

CREATE TABLE formation (
    app_id       UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    process_type TEXT NOT NULL,
    count        BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (app_id, process_type)
);

CREATE TABLE domains (
    domain     TEXT PRIMARY KEY NOT NULL,
    app_id     UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX domains_app ON domains (app_id);

-- The audit trail. It names apps and users by name, not by reference, so it outlives them.
CREATE TABLE events (
    id         UUID PRIMARY KEY,
    app        TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_app ON events (app, id);
