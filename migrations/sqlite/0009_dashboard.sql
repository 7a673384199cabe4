-- Issue 13, the dashboard. Sign-ins: the browser holds a random secret in a cookie; the store keeps
-- only its SHA-256, the user, the session's CSRF token and when it ends. Signing out deletes
-- the row, so a copied cookie is worthless from then on; so is one past expires_at.
CREATE TABLE web_sessions (
    secret_hash TEXT PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- When a release's release phase (its `release:` command) finished, so the dashboard can
-- show a deploy as its release phase and its rollout; NULL when it had none or it failed.
ALTER TABLE releases ADD COLUMN release_phase_finished_at TEXT;
